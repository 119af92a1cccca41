from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from tests.tasks.helpers import create_task, decide, generate_all, submit


@pytest.fixture
def accepted_task(ready_repository, project, contractor, reviewer):
    task = submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    decide(task, reviewer=reviewer)
    return task


def test_the_command_exports_accepted_judgements_only(
    accepted_task, ready_repository, project, contractor, tmp_path
):
    # A second task that is only submitted must not be exported by default.
    submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    out = tmp_path / "out.jsonl"
    call_command("export_dataset", "--project", project.name, "-o", str(out))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in records] == [accepted_task.pk]
    record = records[0]
    assert record["repository"] == ready_repository.full_name
    assert record["prompt"] == "Make div safe."
    assert record["conversation"] == [{"role": "user", "content": "Make div safe."}]
    assert record["scores"]["B"]["maintainability"] == 2
    assert record["justification"] == "A handles the zero case; B crashes."
    assert record["contractor_id"] == contractor.pk
    assert record["candidates"]["A"]["diff"].startswith("--- a/")

    call_command("export_dataset", "--include-unaccepted", "-o", str(out))
    assert len(out.read_text().splitlines()) == 2


def test_an_unknown_project_is_a_clear_error_and_writes_no_file(db, tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(CommandError, match="No project named 'nope'"):
        call_command("export_dataset", "--project", "nope", "-o", str(out))
    assert not out.exists()


@pytest.fixture
def exported(ready_repository, project, contractor, reviewer):
    """Three accepted tasks: A preferred, B preferred, and a tie."""
    from tasks import services
    from tests.tasks.helpers import valid_scores

    made = []
    for preference, (a, b) in ((-2, (4, 2)), (1, (3, 4)), (0, (3, 3))):
        task = generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
        task = services.task_submit(
            task=task, by=contractor, preference=preference, scores=valid_scores(project, a, b),
            justification="=HYPERLINK(\"http://evil\") is how B breaks things.",
        )  # fmt: skip
        decide(task, reviewer=reviewer)
        made.append(task)
    return made


def _jsonl(fmt: str, tmp_path) -> list[dict]:
    out = tmp_path / f"{fmt.replace(':', '_')}.jsonl"
    call_command("export_dataset", "--format", fmt, "-o", str(out))
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_trl_records_are_conversational_pairs_without_ties(exported, tmp_path):
    records = _jsonl("trl", tmp_path)
    assert len(records) == 2  # the tie is left out
    for record in records:
        assert set(record) == {"prompt", "chosen", "rejected"}
        assert record["prompt"][-1]["role"] == "user" and record["prompt"][-1]["content"]
        for side in ("chosen", "rejected"):
            assert [m["role"] for m in record[side]] == ["assistant"]
            assert "```diff" in record[side][0]["content"]


def test_openai_records_follow_the_preference_format(exported, tmp_path):
    records = _jsonl("openai", tmp_path)
    assert len(records) == 2
    for record in records:
        assert set(record) == {"input", "preferred_output", "non_preferred_output"}
        assert set(record["input"]) == {"messages"}
        roles = [m["role"] for m in record["input"]["messages"]]
        assert roles[0] == "system" and set(roles[1:]) <= {"user", "assistant"}
        assert record["preferred_output"][0]["role"] == "assistant"


def test_the_chosen_answer_is_the_preferred_candidate(exported, tmp_path):
    native = {r["task_id"]: r for r in _jsonl("native", tmp_path)}
    trl = _jsonl("trl", tmp_path)
    first = native[exported[0].pk]  # preference -2: A preferred
    assert trl[0]["chosen"][0]["content"] == first["candidates"]["A"]["answer"]
    second = native[exported[1].pk]  # preference +1: B preferred
    assert trl[1]["chosen"][0]["content"] == second["candidates"]["B"]["answer"]
    assert native[exported[2].pk]["preferred_slot"] is None  # the tie is kept in native


def test_a_criterion_export_uses_one_axis_and_skips_equal_scores(exported, tmp_path):
    records = _jsonl("criterion:security", tmp_path)
    assert len(records) == 2 and all(r["criterion"] == "security" for r in records)


def test_the_csv_summary_neutralises_formulas(exported, tmp_path):
    import csv as csv_module

    out = tmp_path / "summary.csv"
    call_command("export_dataset", "--format", "csv", "-o", str(out))
    rows = list(csv_module.DictReader(out.open()))
    assert len(rows) == 3
    assert all(row["justification"].startswith("'=HYPERLINK") for row in rows)
    assert {row["preferred_slot"] for row in rows} == {"A", "B", ""}


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_safe_neutralises_every_formula_start(cell):
    from reviews.exports import csv_safe

    assert csv_safe(cell) == "'" + cell
    assert csv_safe("plain") == "plain"


def test_an_unknown_format_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="Unknown format"):
        call_command("export_dataset", "--format", "parquet", "-o", str(tmp_path / "x"))
