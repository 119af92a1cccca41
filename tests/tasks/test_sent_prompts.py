"""Exports give trainers the prompt the models were really sent.

Two real model clients (anthropic, openai) talk to loopback fakes that record every request.
A two-turn task is judged, accepted and exported; the TRL `prompt` and the OpenAI `input`
must equal, message for message, what went over the wire for that turn: the system message
with the repository context, the "Task (Kind): Title" header and the conversation.
"""

from __future__ import annotations

import orjson
import pytest
from django.core.management import call_command

from reviews import exports
from reviews.export_filters import ExportFilters
from tasks import prompting, services
from tasks.models import Candidate, SentPrompt, Task
from tests.fakes.model_servers import FakeAnthropicServer
from tests.tasks.helpers import create_task, decide, generate_all, valid_scores, vendor_project

FOLLOW_UP = "Now also guard add()."


@pytest.fixture
def two_turn_task(ready_repository, fake_models, contractor, reviewer) -> Task:
    project = vendor_project(
        *fake_models, max_turns=2, system_prompt="You review and fix code for a living."
    )
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    judged = {"scores": valid_scores(project, 4, 2), "justification": "A is the safer change."}
    services.task_follow_up(task=task, by=contractor, preference=-2, prompt=FOLLOW_UP, **judged)
    task = generate_all(task)
    services.task_submit(task=task, by=contractor, preference=-2, **judged)
    decide(task, reviewer=reviewer)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    return task


def _sent(server, number: int) -> list[dict]:
    """The chat messages of the server's request for turn `number` (one request per turn)."""
    body = server.requests[number - 1].body
    if isinstance(server, FakeAnthropicServer):
        return [{"role": "system", "content": body["system"]}, *body["messages"]]
    return body["messages"]


def _records(fmt: str, **kwargs) -> list[dict]:
    blocks = exports.export_blocks(fmt=fmt, filters=ExportFilters(), **kwargs)
    return [orjson.loads(line) for b in blocks for line in b.data.splitlines()]


def test_the_pairwise_prompt_is_exactly_what_each_model_was_sent(two_turn_task, fake_models):
    alpha, beta = fake_models
    assert len(alpha.requests) == len(beta.requests) == 2
    trl = _records("trl")
    openai_lines = _records("openai")
    assert len(trl) == len(openai_lines) == 2
    for number in (1, 2):
        # Both models saw the same messages; the export names exactly those.
        assert _sent(alpha, number) == _sent(beta, number)
        sent = _sent(alpha, number)
        assert trl[number - 1]["prompt"] == sent
        assert openai_lines[number - 1]["input"]["messages"] == sent
    system = _sent(alpha, 2)[0]["content"]
    assert system.startswith("You review and fix code for a living.")
    assert "Files in the repository:" in system and "--- calc/ops.py ---" in system
    conversation = _sent(alpha, 2)[1:]
    assert [m["role"] for m in conversation] == ["user", "assistant", "user"]
    assert conversation[0]["content"] == "Task (Bug fix): Guard division\n\nMake div safe."
    assert conversation[-1]["content"] == FOLLOW_UP


def test_native_records_carry_the_model_prompt_and_the_bare_prompt(two_turn_task, fake_models):
    alpha, _ = fake_models
    native = _records("native")
    assert [r["model_prompt"] for r in native] == [_sent(alpha, 1), _sent(alpha, 2)]
    assert {r["model_prompt_status"] for r in native} == {"recorded"}
    assert native[1]["prompt"] == FOLLOW_UP
    assert [m["role"] for m in native[1]["conversation"]] == ["user", "assistant", "user"]
    # One stored row per distinct prompt: both candidates of a turn share it.
    assert SentPrompt.objects.count() == 2
    assert Candidate.objects.filter(turn__task=two_turn_task, sent_prompt=None).count() == 0


def test_the_bare_style_keeps_the_contractors_prompts_only(two_turn_task, tmp_path):
    (_, second) = _records("trl", prompt_style="bare")
    assert [m["role"] for m in second["prompt"]] == ["user", "assistant", "user"]
    assert second["prompt"][0]["content"] == "Make div safe."
    assert second["prompt"][-1]["content"] == FOLLOW_UP
    out = tmp_path / "bare.jsonl"
    call_command("export_dataset", "--format", "trl", "--prompt-style", "bare", "-o", str(out))
    assert '"role":"system"' not in out.read_text()


def test_an_unknown_prompt_style_is_refused():
    with pytest.raises(Exception, match="Unknown prompt style 'fancy'"):
        list(exports.export_blocks(fmt="trl", prompt_style="fancy"))


def test_the_prompt_is_kept_before_the_model_answers(ready_repository, project, contractor):
    """The stored prompt is the request itself, rebuilt by no one: one function makes both."""
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate = Candidate.objects.filter(turn__task=task).first()
    request = prompting.build_request(candidate)
    kept = prompting.sent_prompt_keep(request)
    assert kept.messages == request.chat_messages()
    assert prompting.sent_prompt_keep(request).pk == kept.pk  # once per content
