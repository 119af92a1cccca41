"""The Celery app. Jobs live in each app's jobs.py, because "task" names the contractor's Task."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marlin.settings.local")

app = Celery("marlin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(related_name="jobs")


@worker_init.connect
def _preload_model_clients(**kwargs) -> None:
    # In the parent, before the pool forks: children start with the SDKs imported.
    from tasks.llm_client import load_providers

    load_providers()
