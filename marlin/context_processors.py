from __future__ import annotations

from django.http import HttpRequest

from marlin import permissions
from reviews.notification_selectors import unread_count


def roles(request: HttpRequest) -> dict:
    """What the navigation needs to show each role its own pages."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav": {}}
    return {
        "nav": {
            "is_contractor": permissions.is_contractor(user),
            "is_reviewer": permissions.is_reviewer(user),
            "can_export": permissions.can_export(user),
            "is_admin": user.is_staff,
            "can_clone": permissions.can_clone_repositories(user),
            "can_oversee": permissions.can_oversee(user),
            "unread_notifications": unread_count(user=user),
        }
    }
