"""The export files as their real consumers read them: Hugging Face `datasets` (as TRL loads
preference data) and OpenAI's preference fine-tuning format; model identities stay in the
export and out of the contractor's and reviewer's pages."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tasks import generation_services, services
from tasks.models import Candidate, Task
from tests.factories import ModelEndpointFactory, ProjectFactory
from tests.tasks.helpers import decide, valid_scores

JUSTIFICATION = "A careful justification of this judgement."
IDENTITIES = ("zorblax-alpha", "zx-9000-alpha", "quendrix-beta", "qd-4242-beta")
FOLLOW_UP = "Now also guard mod against zero."


def _generate_queued(task: Task) -> None:
    for candidate in Candidate.objects.filter(turn__task=task, status=Candidate.Status.QUEUED):
        generation_services.candidate_generate(candidate_id=candidate.pk)
    task.refresh_from_db()
    assert task.status == Task.Status.AWAITING_PREFERENCE, task.status


def _task(*, contractor, project, repository, prompt: str) -> Task:
    task = services.task_create(
        contractor=contractor, project=project, repository=repository, ref="",
        title="Guard division", kind=Task.Kind.BUG_FIX, prompt=prompt,
    )  # fmt: skip
    _generate_queued(task)
    return task


def _submit(task: Task, preference: int, a: int, b: int) -> Task:
    return services.task_submit(
        task=task, by=task.contractor, preference=preference,
        scores=valid_scores(task.project, a, b), justification=JUSTIFICATION,
    )  # fmt: skip


@pytest.fixture
def secret_project(db):
    """A project whose endpoints have names and model ids no page has any reason to show."""
    return ProjectFactory(
        name="Consumers project",
        max_turns=2,
        endpoint_a=ModelEndpointFactory(name="zorblax-alpha", model_id="zx-9000-alpha"),
        endpoint_b=ModelEndpointFactory(name="quendrix-beta", model_id="qd-4242-beta"),
    )


@pytest.fixture
def dataset(ready_repository, secret_project, contractor, reviewer):
    """Accepted: A preferred, B preferred, a tie, a two-turn task; one task only submitted."""
    made = {}
    for name, (preference, a, b) in {
        "a_wins": (-2, 4, 2), "b_wins": (1, 3, 4), "tie": (0, 3, 3),
    }.items():  # fmt: skip
        task = _task(
            contractor=contractor, project=secret_project, repository=ready_repository,
            prompt=f"Make div safe ({name}).",
        )  # fmt: skip
        made[name] = _submit(task, preference, a, b)
    task = _task(
        contractor=contractor, project=secret_project, repository=ready_repository,
        prompt="Make div safe (two turns).",
    )  # fmt: skip
    services.task_follow_up(
        task=task, by=contractor, preference=-1, scores=valid_scores(secret_project, 4, 3),
        justification=JUSTIFICATION, prompt=FOLLOW_UP,
    )  # fmt: skip
    _generate_queued(task)
    # Models name themselves: the answers keep it in the export, the pages must mask it.
    for candidate in Candidate.objects.filter(turn__task=task).select_related("endpoint"):
        endpoint = candidate.endpoint
        candidate.explanation = (
            f"I am {endpoint.name} (model {endpoint.model_id}).\n\n{candidate.explanation}"
        )
        candidate.save(update_fields=["explanation"])
    made["two_turns"] = _submit(task, 2, 2, 4)
    for task in made.values():
        decide(task, reviewer=reviewer)
    pending = _task(
        contractor=contractor, project=secret_project, repository=ready_repository,
        prompt="Make div safe (pending).",
    )  # fmt: skip
    made["pending"] = _submit(pending, -3, 4, 2)
    for name, task in made.items():
        task.refresh_from_db()
        assert task.status == ("SUBMITTED" if name == "pending" else "ACCEPTED"), name
    return made


@pytest.fixture
def exported(dataset, tmp_path) -> dict[str, Path]:
    """The command's trl, native, openai and criterion:security files."""
    files = {}
    for fmt in ("trl", "native", "openai", "criterion:security"):
        path = tmp_path / f"{fmt.replace(':', '-')}.jsonl"
        call_command("export_dataset", "--format", fmt, "-o", str(path), stderr=io.StringIO())
        files[fmt] = path
    return files


@pytest.fixture
def load_json(tmp_path, monkeypatch):
    """`datasets.load_dataset("json", ...)` with its caches in tmp_path and no network."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HOME", str(cache / "home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    def load(path: Path):
        return datasets.load_dataset(
            "json", data_files=str(path), split="train", cache_dir=str(cache / "datasets")
        )

    return load


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _native_ties(exported) -> list[dict]:
    return [r for r in _lines(exported["native"]) if r["preference"] == 0]


def _messages_feature():
    import datasets

    return datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})


def test_datasets_loads_the_trl_file_as_conversational_preference_data(
    dataset, exported, load_json
):
    ds = load_json(exported["trl"])
    assert set(ds.column_names) == {"prompt", "chosen", "rejected"}
    for column in ("prompt", "chosen", "rejected"):
        assert ds.features[column] == _messages_feature(), ds.features
    native = _lines(exported["native"])
    assert ds.num_rows == sum(1 for r in native if r["preference"] != 0) == 4

    rows = list(ds)
    for row in rows:
        assert [m["role"] for m in row["chosen"]] == ["assistant"]
        assert [m["role"] for m in row["rejected"]] == ["assistant"]
        assert "**Demo output**" in row["chosen"][0]["content"]
        # The prompt is what the models were sent: the system message (with the repository
        # context) first, the conversation last.
        assert row["prompt"][0]["role"] == "system"
        assert "Files in the repository:" in row["prompt"][0]["content"]
        assert row["prompt"][-1]["role"] == "user"

    (two_turns,) = [r for r in rows if len(r["prompt"]) > 2]
    roles = [m["role"] for m in two_turns["prompt"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert two_turns["prompt"][1]["content"] == (
        "Task (Bug fix): Guard division\n\nMake div safe (two turns)."
    )
    assert two_turns["prompt"][-1]["content"] == FOLLOW_UP
    # The conversation goes on from turn 1's preferred answer (A, preference -1); turn 2
    # preferred B (+2).
    by_turn = {r["turn"]: r for r in native if r["task_id"] == dataset["two_turns"].pk}
    assert two_turns["prompt"] == by_turn[2]["model_prompt"]
    # The models saw turn 1's answer as it was then (the fixture made it name itself later).
    assert by_turn[1]["candidates"]["A"]["answer"].endswith(two_turns["prompt"][2]["content"])
    assert "I am" not in two_turns["prompt"][2]["content"]
    assert two_turns["chosen"][0]["content"] == by_turn[2]["candidates"]["B"]["answer"]
    assert two_turns["rejected"][0]["content"] == by_turn[2]["candidates"]["A"]["answer"]
    first_turn = [r for r in rows if r["prompt"] == by_turn[1]["model_prompt"]]
    assert len(first_turn) == 1  # turn 1 of the same task is its own record
    assert first_turn[0]["chosen"][0]["content"] == by_turn[1]["candidates"]["A"]["answer"]


def test_datasets_loads_the_native_file_with_ties_and_every_field(dataset, exported, load_json):
    ds = load_json(exported["native"])
    assert {
        "schema_version", "task_id", "turn", "project", "repository", "commit_sha", "prompt",
        "conversation", "candidates", "scores", "preference", "preference_label",
        "preferred_slot", "criterion_preferences", "justification", "status", "submitted_at",
        "quality",
    } <= set(ds.column_names)  # fmt: skip
    assert ds.num_rows == 5  # three one-turn tasks, two turns of the fourth; the tie kept
    assert set(ds["schema_version"]) == {3}
    accepted = [t.pk for n, t in dataset.items() if n != "pending"]
    assert sorted(set(ds["task_id"])) == sorted(accepted)
    assert sorted(ds["preference"]) == [-2, -1, 0, 1, 2]
    tie = ds[ds["preference"].index(0)]
    assert tie["preferred_slot"] is None and tie["preference_label"] == "About the same"
    assert tie["criterion_preferences"] == {
        "correctness": None, "security": None, "reliability": None, "maintainability": None,
    }  # fmt: skip
    a_wins = ds[ds["task_id"].index(dataset["a_wins"].pk)]
    assert a_wins["criterion_preferences"]["security"] == "A"
    assert a_wins["scores"]["A"]["security"] == 4 and a_wins["scores"]["B"]["security"] == 2
    assert set(a_wins["candidates"]) == {"A", "B"}
    assert {a_wins["candidates"][s]["endpoint"] for s in "AB"} == {
        "zorblax-alpha", "quendrix-beta",
    }  # fmt: skip
    assert a_wins["candidates"]["A"]["answer"].endswith("```")


def test_datasets_loads_a_criterion_file(dataset, exported, load_json):
    ds = load_json(exported["criterion:security"])
    assert set(ds.column_names) == {"prompt", "chosen", "rejected", "criterion"}
    for column in ("prompt", "chosen", "rejected"):
        assert ds.features[column] == _messages_feature()
    assert set(ds["criterion"]) == {"security"}
    # Every turn but the tie has different security scores.
    assert ds.num_rows == 4
    native = _lines(exported["native"])
    for row in ds:
        (source,) = [
            r for r in native
            if r["model_prompt"] == row["prompt"]
        ]  # fmt: skip
        higher = (
            "A" if source["scores"]["A"]["security"] > source["scores"]["B"]["security"] else "B"
        )
        assert row["chosen"][0]["content"] == source["candidates"][higher]["answer"]


def _check_openai_message(message: object, roles: tuple[str, ...]) -> None:
    assert isinstance(message, dict) and set(message) == {"role", "content"}, message
    assert message["role"] in roles, message
    assert isinstance(message["content"], str), message


def check_openai_preference_record(record: object) -> None:
    """OpenAI's preference (DPO) fine-tuning line: input.messages, then exactly one preferred
    and one non-preferred assistant message."""
    assert isinstance(record, dict)
    assert set(record) == {"input", "preferred_output", "non_preferred_output"}, set(record)
    assert isinstance(record["input"], dict) and set(record["input"]) == {"messages"}
    messages = record["input"]["messages"]
    assert isinstance(messages, list) and messages
    for message in messages:
        _check_openai_message(message, ("user", "assistant", "system"))
    assert messages[-1]["role"] == "user"
    for key in ("preferred_output", "non_preferred_output"):
        output = record[key]
        assert isinstance(output, list) and len(output) == 1, output
        _check_openai_message(output[0], ("assistant",))
        assert output[0]["content"].strip()


@pytest.mark.parametrize(
    "bad",
    [
        {"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []},
        {
            "input": {"messages": [{"role": "user", "content": "x"}]},
            "preferred_output": [{"role": "user", "content": "y"}],
            "non_preferred_output": [{"role": "assistant", "content": "z"}],
        },
        {
            "input": {"messages": [{"role": "user", "content": "x"}]},
            "preferred_output": [{"role": "assistant", "content": "y"}],
            "non_preferred_output": [{"role": "assistant", "content": ""}],
        },
        {
            "input": {"messages": [{"role": "tool", "content": "x"}]},
            "preferred_output": [{"role": "assistant", "content": "y"}],
            "non_preferred_output": [{"role": "assistant", "content": "z"}],
        },
        {"prompt": [], "chosen": [], "rejected": []},
    ],
)
def test_the_openai_schema_check_refuses_bad_records(bad):
    with pytest.raises(AssertionError):
        check_openai_preference_record(bad)


def test_every_openai_line_follows_the_preference_schema(dataset, exported):
    lines = exported["openai"].read_text().splitlines()
    assert len(lines) == 4
    for line in lines:
        check_openai_preference_record(json.loads(line))
    trl = _lines(exported["trl"])
    openai = [json.loads(line) for line in lines]
    # The same pairs as TRL, in the same order.
    assert [r["input"]["messages"] for r in openai] == [r["prompt"] for r in trl]
    assert [r["preferred_output"] for r in openai] == [r["chosen"] for r in trl]
    assert [r["non_preferred_output"] for r in openai] == [r["rejected"] for r in trl]


def test_no_tie_reaches_a_pairwise_file(dataset, exported):
    (tie,) = _native_ties(exported)
    assert tie["task_id"] == dataset["tie"].pk
    tie_answers = {tie["candidates"][s]["answer"] for s in "AB"}
    pairwise = [
        (r["prompt"], r["chosen"], r["rejected"])
        for fmt in ("trl", "criterion:security")
        for r in _lines(exported[fmt])
    ] + [
        (r["input"]["messages"], r["preferred_output"], r["non_preferred_output"])
        for r in _lines(exported["openai"])
    ]
    assert len(pairwise) == 12
    for prompt, chosen, rejected in pairwise:
        assert prompt != tie["conversation"]
        assert chosen[0]["content"] not in tie_answers
        assert rejected[0]["content"] not in tie_answers


def test_a_task_not_accepted_is_not_exported_by_default(dataset, exported):
    pending = dataset["pending"]
    assert pending.pk not in {r["task_id"] for r in _lines(exported["native"])}
    for path in exported.values():
        assert "Make div safe (pending)." not in path.read_text()
    answers = [c.explanation for c in Candidate.objects.filter(turn__task=pending)]
    assert answers and all(answer for answer in answers)
    for path in exported.values():
        text = path.read_text()
        assert all(json.dumps(answer)[1:-1] not in text for answer in answers)


def _worker_pages(task: Task, contractor, reviewer) -> dict[str, str]:
    carol, rita = Client(), Client()
    carol.force_login(contractor)
    rita.force_login(reviewer)
    responses = {
        "contractor task page": carol.get(reverse("tasks:detail", args=[task.pk])),
        "contractor candidates": carol.get(reverse("tasks:candidates", args=[task.pk])),
        "reviewer page": rita.get(reverse("reviews:detail", args=[task.pk])),
    }
    for where, response in responses.items():
        assert response.status_code == 200, where
    return {where: response.content.decode() for where, response in responses.items()}


def test_model_identities_are_in_the_native_export_and_on_no_worker_page(
    dataset, exported, contractor, reviewer
):
    task = dataset["two_turns"]
    records = [r for r in _lines(exported["native"]) if r["task_id"] == task.pk]
    assert [r["turn"] for r in records] == [1, 2]
    for record in records:
        candidates = record["candidates"].values()
        assert {c["endpoint"] for c in candidates} == {"zorblax-alpha", "quendrix-beta"}
        assert {c["model_id"] for c in candidates} == {"zx-9000-alpha", "qd-4242-beta"}
        # What the model wrote about itself is kept whole in the export.
        for candidate in candidates:
            assert candidate["answer"].startswith(
                f"I am {candidate['endpoint']} (model {candidate['model_id']})."
            )
    native = exported["native"].read_text()
    assert all(identity in native for identity in IDENTITIES)

    pages = _worker_pages(task, contractor, reviewer)
    for where, html in pages.items():
        assert "Demo output" in html, where  # the candidates' answers are on the page
        assert "I am [model] (model [model])." in html, where
        leaked = [identity for identity in IDENTITIES if identity in html]
        assert not leaked, f"{where} shows {leaked}"
    assert FOLLOW_UP in pages["contractor task page"]
    assert FOLLOW_UP in pages["reviewer page"]


def test_a_model_naming_itself_in_its_diff_is_not_shown_to_workers(
    dataset, contractor, reviewer, tmp_path
):
    """The diff is part of the answer (README: names in answers are masked on the pages)."""
    task = dataset["a_wins"]
    for candidate in Candidate.objects.filter(turn__task=task).select_related("endpoint"):
        endpoint = candidate.endpoint
        signed = re.sub(
            r"TODO\(demo [0-9a-f]{8}\)|Demo change [0-9a-f]{8}",
            f"Written by {endpoint.name} ({endpoint.model_id})",
            candidate.diff,
        )
        assert signed != candidate.diff
        candidate.diff = signed
        candidate.save(update_fields=["diff"])
    out = tmp_path / "native.jsonl"
    call_command("export_dataset", "-o", str(out), stderr=io.StringIO())
    (record,) = [r for r in _lines(out) if r["task_id"] == task.pk]
    for candidate in record["candidates"].values():
        assert (
            f"Written by {candidate['endpoint']} ({candidate['model_id']})" in (candidate["diff"])
        )

    for where, html in _worker_pages(task, contractor, reviewer).items():
        assert "Written by" in html, where  # the diff is on the page
        leaked = [identity for identity in IDENTITIES if identity in html]
        assert not leaked, f"{where} shows {leaked} in a candidate's diff"
