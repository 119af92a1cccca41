"""A whole worker killed mid-generation (SIGKILL of its process group, beat included) strands
nothing: the candidates' leases run out, the reaper sends them to a new job, and each answer
is written once, with no contractor action. The dead worker's messages, which Redis hands out
again only after its visibility timeout, change nothing when they do come back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import kombu
import pytest
from django.conf import settings
from django.db import connection

from tasks.models import Candidate, Task, TaskEvent
from tests.conftest import BASE_DIR, wait_for
from tests.fakes.model_servers import delay
from tests.tasks.helpers import create_task, vendor_project

pytestmark = [
    pytest.mark.worker,
    pytest.mark.needs_redis,
    pytest.mark.django_db(transaction=True),
]

# Short enough for a test; base.py's validation holds (stale >= 2 x heartbeat).
HEARTBEAT_SECONDS = 1
STALE_SECONDS = 4
REAP_SECONDS = 2
# From the kill to both candidates written: lease (4 s) + reaper (2 s) + a new worker's
# start-up and two model calls, with room for a loaded machine.
RECOVERY_BUDGET_SECONDS = 90


class WorkerGroup:
    """A `celery worker -B` in its own process group, so the whole of it can be killed.

    Three processes: two for the candidates, one left free for the reaper.
    """

    def __init__(self, log_path: Path, schedule_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "marlin", "worker", "--pool=prefork",
             "--concurrency=3", "--loglevel=INFO", "--without-gossip", "--without-mingle",
             "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "-B", "-s", str(schedule_path)],
            cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            process_group=0,
        )  # fmt: skip
        self.pgid = os.getpgid(self.process.pid)
        assert self.pgid == self.process.pid != os.getpgid(0)  # never our own group
        wait_for(self._ready, timeout=60, message=f"the worker to start:\n{self.log()}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"Celery worker exited:\n{self.log()}")
        return "ready." in self.log()

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL to every process of the group: no warm shutdown, no message handed back."""
        os.killpg(self.pgid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.pgid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pgid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


@pytest.fixture
def start_worker(transactional_db, git_server, repo_cache_dir, tmp_path) -> Iterator:
    from marlin.celery import app as celery_app

    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)
    started: list[WorkerGroup] = []

    def start(name: str) -> WorkerGroup:
        env = dict(os.environ)  # read now: fixtures before this one set the model keys
        env.update(
            DJANGO_SETTINGS_MODULE="marlin.settings.test",
            MARLIN_TEST_DATABASE_NAME=str(connection.settings_dict["NAME"]),
            CELERY_TASK_DEFAULT_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
            MARLIN_TEST_GIT_ALLOWED_BASES=",".join(settings.MARLIN_GIT_ALLOWED_BASES),
            MARLIN_REPO_CACHE_DIR=str(repo_cache_dir),
            MARLIN_GENERATION_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
            MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS=str(STALE_SECONDS),
            MARLIN_GENERATION_REAP_SECONDS=str(REAP_SECONDS),
        )
        worker = WorkerGroup(tmp_path / f"{name}.log", tmp_path / f"{name}-beat", env)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
            print(f"--- {worker.log_path.name} ---\n{worker.log()[-4000:]}")


def _unacked_job_ids() -> set[str]:
    """Ids of this run's jobs that Redis holds as delivered but not acknowledged."""
    with kombu.Connection(settings.CELERY_BROKER_URL) as conn:
        client = conn.default_channel.client
        ids = set()
        for raw in client.hvals("unacked"):
            message, _exchange, routing_key = json.loads(raw)
            if routing_key == settings.CELERY_TASK_DEFAULT_QUEUE:
                ids.add(message["headers"]["id"])
        return ids


def _redeliver_unacked() -> None:
    """What Redis does once the visibility timeout (3600 s) has passed, done now."""
    options = {"visibility_timeout": 0}
    with kombu.Connection(settings.CELERY_BROKER_URL, transport_options=options) as conn:
        conn.default_channel.qos.restore_visible(num=1000, interval=1)


def test_a_killed_worker_group_is_recovered_automatically_and_written_once(
    fake_models, start_worker, ready_repository, contractor
):
    alpha, beta = fake_models
    project = vendor_project(alpha, beta)
    # Each model holds its first request open: the job is mid-call when its worker dies.
    for server in (alpha, beta):
        server.enqueue(delay(300))
    first = start_worker("first")
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidates = Candidate.objects.filter(turn__task=task).order_by("slot")
    wait_for(
        lambda: len(alpha.requests) == 1 and len(beta.requests) == 1,
        timeout=60,
        message="both model calls to be in flight",
    )
    dead_jobs = set(candidates.values_list("job_id", flat=True))
    assert len(dead_jobs) == 2

    # Slow is not dead: past the lease and several reaper runs the heartbeat keeps both rows.
    time.sleep(STALE_SECONDS + 2 * REAP_SECONDS + 1)
    assert list(candidates.values_list("status", "attempts")) == [("RUNNING", 1)] * 2
    assert len(alpha.requests) == len(beta.requests) == 1

    first.kill()
    killed_at = time.monotonic()
    # The broker still holds both messages as delivered: it alone would wait 3600 s.
    assert _unacked_job_ids() >= dead_jobs

    second = start_worker("second")
    wait_for(
        lambda: all(c.status == Candidate.Status.SUCCEEDED for c in candidates.all()),
        timeout=RECOVERY_BUDGET_SECONDS,
        interval=0.5,
        message="both candidates to be re-run and written",
    )
    recovery = time.monotonic() - killed_at
    print(f"worker group killed -> both candidates SUCCEEDED in {recovery:.1f} s")

    for candidate in candidates.all():
        # One more attempt each, under a new job id: not the dead job finishing late.
        assert candidate.attempts == 2
        assert candidate.job_id not in dead_jobs
        assert candidate.error == ""
        assert "marker" in candidate.explanation and candidate.applies_cleanly
    assert len(alpha.requests) == len(beta.requests) == 2
    task.refresh_from_db()
    assert task.status == Task.Status.AWAITING_PREFERENCE
    moves = TaskEvent.objects.filter(task=task, to_status=Task.Status.AWAITING_PREFERENCE)
    assert moves.count() == 1

    # The visibility timeout ends: the dead jobs' own messages come back. They are refused
    # at the claim (the rows are finished and held by other job ids) and change nothing.
    before = list(candidates.values())
    _redeliver_unacked()
    wait_for(
        lambda: not (_unacked_job_ids() & dead_jobs),
        timeout=30,
        message="the dead jobs' messages to be redelivered and acknowledged",
    )
    for candidate in candidates.all():
        wait_for(
            lambda c=candidate: f"candidate {c.pk} already claimed" in second.log(),
            timeout=30,
            message=f"the redelivered job of candidate {candidate.pk} to be refused",
        )
    assert list(candidates.values()) == before
    assert len(alpha.requests) == len(beta.requests) == 2
