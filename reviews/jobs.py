from __future__ import annotations

from celery import shared_task

from reviews.claims import claims_release_expired


@shared_task(name="reviews.jobs.review_claims_release_expired_run", ignore_result=True)
def review_claims_release_expired_run() -> int:
    """Periodic (celery beat): abandoned claims lapse and their tasks return to the queue."""
    return claims_release_expired()
