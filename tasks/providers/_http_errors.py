"""Turning an SDK's HTTP failure into a ProviderError with the right retry advice."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from django.utils import timezone

from tasks.llm_client import ProviderError

BUSY = "The model is busy; Marlin will try again shortly."
DOWN = "The model service had an error; Marlin will try again shortly."
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
    return ProviderError("The model took too long to answer; Marlin will try again shortly.",
                         transient=True, detail=detail)  # fmt: skip


def connection_error(detail: str) -> ProviderError:
    return ProviderError("The model service could not be reached; Marlin will try again shortly.",
                         transient=True, detail=detail)  # fmt: skip


def malformed_error(detail: str) -> ProviderError:
    return ProviderError("The model's answer could not be read; Marlin will try again shortly.",
                         transient=True, detail=detail)  # fmt: skip
