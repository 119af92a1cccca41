"""Errors services raise; one view decorator maps them to a response (STYLE 2.6)."""

from __future__ import annotations


class ApplicationError(Exception):
    """A request that cannot be carried out, with a message a person can act on."""

    status_code = 400

    def __init__(self, message: str, *, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class InvalidTransition(ApplicationError):
    """A state change asked of a row that is not in a state that allows it (or lost a race)."""

    status_code = 409

    def __init__(self, *, obj: object, current: str, to: str) -> None:
        super().__init__(f"Cannot move {obj} from {current} to {to}.")
        self.current = current
        self.to = to


class PermissionDeniedError(ApplicationError):
    status_code = 403


class ConflictError(ApplicationError):
    """Someone else got there first (a claim taken, a round already decided)."""

    status_code = 409
