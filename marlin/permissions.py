"""Role checks in one place: views, API views and selectors ask these, never group names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def is_contractor(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.has_perm("tasks.work_on_tasks"))


def is_reviewer(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.has_perm("reviews.review_tasks"))


def can_export(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.has_perm("reviews.export_dataset"))


def can_clone_repositories(user: User | AnonymousUser) -> bool:
    """Contractors clone what they pick; admins prepare the catalogue."""
    return is_contractor(user) or bool(
        user.is_authenticated and user.has_perm("repos.change_repository")
    )


def can_oversee(user: User | AnonymousUser) -> bool:
    """Admins: every task's record, pay and reviewer metrics."""
    return bool(user.is_authenticated and user.has_perm("reviews.oversee_reviews"))


# The API's permission classes: each the role check above, for DRF views.


class IsContractor(BasePermission):
    def has_permission(self, request, view) -> bool:
        return is_contractor(request.user)


class IsReviewer(BasePermission):
    """Reviewers; which task or audit one may touch is the service's call."""

    def has_permission(self, request, view) -> bool:
        return is_reviewer(request.user)


class IsOverseer(BasePermission):
    def has_permission(self, request, view) -> bool:
        return can_oversee(request.user)


class IsReviewerOrOverseer(BasePermission):
    def has_permission(self, request, view) -> bool:
        return is_reviewer(request.user) or can_oversee(request.user)


class CanExport(BasePermission):
    def has_permission(self, request, view) -> bool:
        return can_export(request.user)
