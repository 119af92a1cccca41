"""What every API view shares: errors from services become clear 4xx responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.forms import Form
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import DjangoModelPermissions
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import exception_handler, set_rollback

from marlin.exceptions import ApplicationError


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """ApplicationError → {"detail": message} with its status (400, 403 or 409)."""
    if isinstance(exc, ApplicationError):
        # As DRF does for its own errors: nothing the request wrote before failing is kept.
        set_rollback()
        return Response({"detail": exc.message, **exc.extra}, status=exc.status_code)
    return exception_handler(exc, context)


class ModelCallThrottle(UserRateThrottle):
    """Endpoints that start model calls (new task, follow-up, retry): each call costs money.

    The rate is read per request, so a changed setting applies without a restart.
    """

    scope = "model_calls"

    def get_rate(self) -> str:
        return settings.MARLIN_API_MODEL_CALLS_RATE


def form_errors(form: Form) -> dict[str, list[str]]:
    """A Django form's errors as DRF reports field errors: {"field": ["message", ...]}."""
    return {
        ("non_field_errors" if name == "__all__" else name): [str(m) for m in messages]
        for name, messages in form.errors.items()
    }


def validated(form: Form) -> Form:
    """The form if valid; otherwise a 400 with each field's messages."""
    if not form.is_valid():
        raise ValidationError(form_errors(form))
    return form


def form_input(data: Any) -> Any:
    """A request body a Django form can read: a JSON object (or form data), else a 400."""
    if not isinstance(data, Mapping):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
    return data


class ModelPermissions(DjangoModelPermissions):
    """Django model permissions for every call, reads included (view_*): the admin role's."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }
