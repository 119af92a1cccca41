"""On a real Celery worker: once generation stores a candidate, a follow-up job builds its
diff HTML, so the first view of the workspace reads it from the cache."""

from __future__ import annotations

import pytest

from tasks.diff_html import candidate_diff_is_cached
from tasks.models import Candidate, Task
from tests.conftest import wait_for
from tests.tasks.helpers import create_task

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_worker_builds_each_stored_candidates_diff_html(
    celery_worker_process, ready_repository, project, contractor
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    wait_for(
        lambda: Task.objects.get(pk=task.pk).status == Task.Status.AWAITING_PREFERENCE,
        timeout=90,
        message="the worker to generate both candidates",
    )
    candidates = list(
        Candidate.objects.filter(turn__task=task).select_related(
            "endpoint", "turn__task__first_endpoint", "turn__task__second_endpoint",
            "turn__task__project",
        )
    )  # fmt: skip
    assert len(candidates) == 2
    assert all(c.status == Candidate.Status.SUCCEEDED and c.diff for c in candidates)
    # Nothing in this process viewed the diffs: only the worker can have built them.
    wait_for(
        lambda: all(
            candidate_diff_is_cached(c) and candidate_diff_is_cached(c, layout="split")
            for c in candidates
        ),
        timeout=60,
        message="the worker to build both candidates' diff HTML",
    )
