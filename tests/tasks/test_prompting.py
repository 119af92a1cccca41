from __future__ import annotations

from tasks import prompting
from tasks.models import Candidate
from tests.tasks.helpers import create_task


def _size(request) -> int:
    return len(request.system.encode()) + sum(len(m["content"].encode()) for m in request.messages)


def test_the_whole_prompt_stays_within_the_budget(ready_repository, project, contractor, settings):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate = Candidate.objects.filter(turn__task=task).first()
    roomy = prompting.build_request(candidate)
    assert "--- calc/ops.py ---" in roomy.system  # with room, file contents are sent
    settings.MARLIN_PROMPT_CONTEXT_BYTES = _size(roomy) - 100
    tight = prompting.build_request(candidate)
    assert _size(tight) <= settings.MARLIN_PROMPT_CONTEXT_BYTES
    # The conversation is never cut; context goes first.
    assert tight.messages == roomy.messages


def test_mentioned_files_come_first(ready_repository, project, contractor):
    task = create_task(
        contractor=contractor, project=project, repository=ready_repository,
        prompt="Please fix tests/test_ops.py so it covers div.",
    )  # fmt: skip
    request = prompting.build_request(Candidate.objects.filter(turn__task=task).first())
    assert next(iter(request.files)) == "tests/test_ops.py"
    assert "Task (Bug fix): Guard division" in request.messages[0]["content"]
