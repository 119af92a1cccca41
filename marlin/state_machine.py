"""Compare-and-set status changes shared by every model with a TRANSITIONS table."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from marlin.exceptions import InvalidTransition


def move(
    obj: models.Model,
    *,
    to: str,
    transitions: dict[str, set[str]],
    field: str = "status",
    **changes: Any,
) -> str:
    """Move obj's row from the status it holds to `to`, with one conditional UPDATE.

    Returns the old status. Raises InvalidTransition, leaving the row untouched, when the
    move is not in the table or another process changed the row first (no row matched).
    """
    current = getattr(obj, field)
    if to not in transitions.get(current, set()):
        raise InvalidTransition(obj=obj, current=current, to=to)
    stamp = {"updated_at": timezone.now()} if _has_field(obj, "updated_at") else {}
    changes = {field: to, **stamp, **changes}
    matched = type(obj).objects.filter(pk=obj.pk, **{field: current}).update(**changes)
    if matched != 1:
        obj.refresh_from_db(fields=[field])
        raise InvalidTransition(obj=obj, current=getattr(obj, field), to=to)
    for name, value in changes.items():
        setattr(obj, name, value)
    return current


def _has_field(obj: models.Model, name: str) -> bool:
    return any(f.name == name for f in obj._meta.concrete_fields)
