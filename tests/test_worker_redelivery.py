"""A worker process killed mid-generation loses nothing: the job is redelivered and the
candidate is written exactly once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tasks.models import Candidate, Task, TaskEvent
from tests.conftest import wait_for
from tests.factories import ModelEndpointFactory, ProjectFactory
from tests.fakes.model_servers import FakeOpenAIServer, delay, ok
from tests.tasks.helpers import create_task

pytestmark = [
    pytest.mark.worker,
    pytest.mark.needs_redis,
    pytest.mark.django_db(transaction=True),
]

ANSWER = (
    "Guarded the division.\n\n```diff\n--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -5,2 +5,4 @@\n"
    " def div(a, b):\n+    if b == 0:\n+        return None\n     return a / b\n```\n"
)


def _children(pid: int) -> list[int]:
    """The worker's pool processes (Linux /proc)."""
    found = []
    for task_dir in Path(f"/proc/{pid}/task").iterdir():
        children = (task_dir / "children").read_text().split()
        found += [int(c) for c in children]
    return found


@pytest.fixture
def slow_model(monkeypatch):
    # Set before the worker starts, so the worker process inherits the key variable.
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-test")
    with FakeOpenAIServer(default=ok(ANSWER)) as server:
        yield server


def test_a_killed_worker_process_loses_nothing(
    slow_model, celery_worker_process, ready_repository, contractor
):
    project = ProjectFactory(
        endpoint_a=ModelEndpointFactory(
            provider="openai", model_id="m", base_url=slow_model.base_url,
            api_key_env="FAKE_OPENAI_KEY",
        ),
        endpoint_b=ModelEndpointFactory(),  # demo: answers at once
    )  # fmt: skip
    # The first request hangs long enough to kill the process that is waiting on it.
    slow_model.enqueue(delay(30, then=ok(ANSWER)))
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    slow = Candidate.objects.get(turn__task=task, endpoint__provider="openai")
    wait_for(lambda: len(slow_model.requests) == 1, timeout=60, message="the first model call")
    slow.refresh_from_db()
    assert slow.status == Candidate.Status.RUNNING and slow.attempts == 1

    for child in _children(celery_worker_process.pid):
        os.kill(child, signal.SIGKILL)

    wait_for(
        lambda: Task.objects.get(pk=task.pk).status == Task.Status.AWAITING_PREFERENCE,
        timeout=90,
        message="the redelivered job to finish the task",
    )
    slow.refresh_from_db()
    assert slow.status == Candidate.Status.SUCCEEDED
    assert slow.attempts == 2  # claimed again by the same job, after the redelivery
    assert "if b == 0" in slow.diff and slow.applies_cleanly
    assert len(slow_model.requests) == 2
    assert Candidate.objects.filter(turn__task=task).count() == 2
    moves = TaskEvent.objects.filter(task=task, to_status=Task.Status.AWAITING_PREFERENCE)
    assert moves.count() == 1
