"""Role checks in one place: views and selectors ask these, never group names."""

from __future__ import annotations

from typing import Any


def is_contractor(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_perm("tasks.work_on_tasks"))


def is_reviewer(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_perm("reviews.review_tasks"))


def can_export(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_perm("reviews.export_dataset"))


def can_clone_repositories(user: Any) -> bool:
    """Contractors clone what they pick; admins prepare the catalogue."""
    return is_contractor(user) or bool(
        user.is_authenticated and user.has_perm("repos.change_repository")
    )


def can_oversee(user: Any) -> bool:
    """Admins: every task's record, pay and reviewer metrics."""
    return bool(user.is_authenticated and user.has_perm("reviews.oversee_reviews"))
