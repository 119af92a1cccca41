"""A database connection lost while the model answers does not lose the paid answer
(issue 14: the fault benchmark's PostgreSQL restart failed every candidate in flight)."""

from __future__ import annotations

import psycopg2
import pytest
from django.db import OperationalError, connection

from marlin import db_retry
from tasks import generation_services
from tasks.models import Candidate, Task
from tests.tasks.conftest import answer_marking
from tests.tasks.helpers import create_task, vendor_project


def _terminate_backend(pid: int) -> None:
    """What a PostgreSQL restart does to the job's connection, done to that one only."""
    settings = connection.settings_dict
    admin = psycopg2.connect(
        dbname=settings["NAME"],
        user=settings["USER"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
    )
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone() == (True,)
    finally:
        admin.close()


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL backend; CI always runs on PostgreSQL")


def test_the_answer_is_stored_on_a_new_connection(
    transactional_db, postgres_only, fake_models, ready_repository, contractor
):
    alpha, beta = fake_models
    project = vendor_project(alpha, beta)
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate = Candidate.objects.select_related("endpoint").get(turn__task=task, slot="A")
    # Slots are drawn per turn: answer from whichever server this candidate's model is on.
    server, mark = (
        (alpha, "alpha") if candidate.endpoint.base_url == alpha.base_url else (beta, "beta")
    )
    connection.ensure_connection()
    job_backend = connection.connection.get_backend_pid()
    marked = answer_marking(mark)

    def answer_after_the_connection_died(body: dict) -> str:
        _terminate_backend(job_backend)
        return marked(body)

    server.set_default(answer_after_the_connection_died)
    generation_services.candidate_generate(candidate_id=candidate.pk, job_id="job-1")

    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.SUCCEEDED, candidate.error
    assert f"{mark}-turn1" in candidate.diff
    assert candidate.attempts == 1
    assert len(server.requests) == 1  # asked once: the answer was kept, not bought again
    assert connection.connection.get_backend_pid() != job_backend


def test_a_database_gone_for_good_still_raises(transactional_db, postgres_only):
    calls = []

    def write() -> None:
        calls.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    with pytest.raises(OperationalError, match="server closed the connection"):
        db_retry.retry_on_disconnect(write, what="testing", delays=(0, 0))
    assert len(calls) == 3
    assert Task.objects.count() == 0
