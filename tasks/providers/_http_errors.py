"""Turning an SDK's HTTP failure into a ProviderError with the right retry advice.

Messages say what happened, never what happens next: whether Marlin tries again depends on
the attempts left, which only the generation service knows (tasks/generation_services.py adds it).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from django.utils import timezone

from tasks.providers.base import ProviderError

BUSY = "The model is busy."
DOWN = "The model service had an error."
REFUSED = "The model refused the request."


def retry_after_seconds(headers) -> float | None:
    """Retry-After as seconds, from either form the header may take (seconds or a date)."""
    if headers is None:
        return None
    raw = headers.get("retry-after-ms")
    if raw:
        try:
            return max(0.0, float(raw) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(raw) - timezone.now()).total_seconds())
        except (TypeError, ValueError):
            return None


def status_error(status: int, headers, detail: str) -> ProviderError:
    if status == 429:
        return ProviderError(BUSY, transient=True, retry_after=retry_after_seconds(headers),
                             detail=detail)  # fmt: skip
    if status >= 500 or status in (408, 409):
        return ProviderError(DOWN, transient=True, retry_after=retry_after_seconds(headers),
                             detail=detail)  # fmt: skip
    return ProviderError(REFUSED, detail=detail)


def timeout_error(detail: str) -> ProviderError:
    return ProviderError("The model took too long to answer.",
                         transient=True, detail=detail)  # fmt: skip


def connection_error(detail: str) -> ProviderError:
    return ProviderError("The model service could not be reached.",
                         transient=True, detail=detail)  # fmt: skip


def malformed_error(detail: str) -> ProviderError:
    return ProviderError("The model's answer could not be read.",
                         transient=True, detail=detail)  # fmt: skip
