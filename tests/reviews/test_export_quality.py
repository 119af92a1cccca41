"""Quality control in exports (issue 18): each record's agreement group, second judgements
(mapped back to the turn's slots), gold answer and the flags of the round it carries; and the
filters keeping only contractors at or above an agreement or gold threshold."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marlin import roles
from marlin.exceptions import ApplicationError
from reviews import exports
from reviews.export_filters import ExportFilters
from reviews.exports import export_lines, native_records
from reviews.forms import ExportForm
from reviews.models import ExportJob, GoldTurn, JudgingTask, SubmissionFlag
from reviews.quality_export import contractor_direction_agreement
from tasks import services
from tasks.models import Submission, Task, Turn
from tests.api_clients import api_client_for
from tests.factories import ProjectFactory, UserFactory
from tests.tasks.helpers import create_task, decide, generate_all

JUSTIFICATION = "Judged for the export quality test."


def _scores(project, a: int, b: int) -> dict:
    return {"A": dict.fromkeys(project.axis_keys, a), "B": dict.fromkeys(project.axis_keys, b)}


def _accepted(*, project, repository, contractor, reviewer, preference, bounced_first=False):
    """An accepted one-turn task whose final judgement has this preference; with
    `bounced_first`, round 1 is judged the other way, bounced, and round 2 accepted."""
    task = generate_all(create_task(contractor=contractor, project=project, repository=repository))
    rounds = [-preference or 1, preference] if bounced_first else [preference]
    for number, pref in enumerate(rounds, start=1):
        if task.status == Task.Status.BOUNCED:
            services.task_revise(task=task, by=contractor)
            task.refresh_from_db()
        task = services.task_submit(
            task=task, by=contractor, preference=pref, scores=_scores(project, 4, 2),
            justification=f"{JUSTIFICATION} Round {number} of {contractor.username}.",
            confirm_warnings=True,
        )  # fmt: skip
        if number < len(rounds):
            decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Look again.")
            task.refresh_from_db()
    decide(task, reviewer=reviewer)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    return task


def _judged(task, *, by, preference, a=3, b=3, swapped=False, gold=None, **fields):
    """A judging task of the task's turn, stored as `by` saw it (swapped: their A is the
    turn's B)."""
    defaults = {"status": JudgingTask.Status.SUBMITTED, "preference": preference,
                "scores": _scores(task.project, a, b), "justification": "Second look.",
                "submitted_at": timezone.now()}  # fmt: skip
    return JudgingTask.objects.create(
        project=task.project, turn=Turn.objects.get(task=task), contractor=by,
        swapped=swapped, gold=gold, **{**defaults, **fields},
    )  # fmt: skip


def _gold(task, *, by, expected, score_ranges) -> GoldTurn:
    return GoldTurn.objects.create(
        turn=Turn.objects.get(task=task), expected=expected, score_ranges=score_ranges,
        created_by=by,
    )  # fmt: skip


@pytest.fixture
def world(ready_repository, project, contractor, other_contractor, reviewer, admin_user):
    """Six accepted tasks of four contractors, with agreement pairs and gold servings:

    pairs (first, second, final, second's preference in the turn's slots, same direction?)
      carol1  carol  dave  -1  -2 (shown +2, swapped)  yes
      carol2  carol  dave   2  -1                      no
      dave1   dave   carol -1   0                      no
      dave2   dave   erin   1   3                      yes
    carol 1 of 3, dave 2 of 4, erin 1 of 1, fay none (her open judging task is no pair).

    gold: fay1 expects A (A scored 3-5), erin1 expects B
      fay1   carol right (swapped), dave wrong way, erin wrong score
      erin1  carol wrong way, dave right
    carol 1 of 2, dave 1 of 2, erin 0 of 1, fay none.
    """
    erin = UserFactory(username="erin", role=roles.CONTRACTOR)
    fay = UserFactory(username="fay", role=roles.CONTRACTOR)
    people = {"carol": contractor, "dave": other_contractor, "erin": erin, "fay": fay}

    def accepted(who: str, preference: int, **kwargs) -> Task:
        return _accepted(project=project, repository=ready_repository,
                         contractor=people[who], reviewer=reviewer, preference=preference,
                         **kwargs)  # fmt: skip

    tasks = {
        "carol1": accepted("carol", -1, bounced_first=True),
        "carol2": accepted("carol", 2),
        "dave1": accepted("dave", -1),
        "dave2": accepted("dave", 1),
        "erin1": accepted("erin", 1),
        "fay1": accepted("fay", -2),
    }
    # Flags are recorded on submit by their own rules; here each is set by hand.
    SubmissionFlag.objects.all().delete()
    carol1 = tasks["carol1"]
    for round_number, kind in ((1, SubmissionFlag.Kind.FAST), (2, SubmissionFlag.Kind.DUPLICATE),
                               (2, SubmissionFlag.Kind.FLAT_SCORES)):  # fmt: skip
        SubmissionFlag.objects.create(
            submission=Submission.objects.get(task=carol1, round=round_number),
            kind=kind, detail="Set by the test.",
        )  # fmt: skip

    _judged(carol1, by=people["dave"], preference=2, a=5, b=1, swapped=True)
    _judged(tasks["carol2"], by=people["dave"], preference=-1)
    _judged(tasks["dave1"], by=people["carol"], preference=0)
    _judged(tasks["dave2"], by=people["erin"], preference=3)
    # Not submitted: no pair, no second judgement.
    _judged(tasks["erin1"], by=fay, preference=None, scores=None, submitted_at=None,
            status=JudgingTask.Status.TAKEN)  # fmt: skip

    axis = project.axis_keys[0]
    gold_a = _gold(tasks["fay1"], by=admin_user, expected=-1, score_ranges={"A": {axis: [3, 5]}})
    gold_b = _gold(tasks["erin1"], by=admin_user, expected=1, score_ranges={})
    # Shown swapped: +1 is the turn's A; shown B's 4 is the turn's A's.
    _judged(tasks["fay1"], by=people["carol"], preference=1, a=1, b=4, swapped=True, gold=gold_a)
    _judged(tasks["fay1"], by=people["dave"], preference=1, a=4, b=1, gold=gold_a)
    _judged(tasks["fay1"], by=people["erin"], preference=-3, a=2, b=4, gold=gold_a)
    _judged(tasks["erin1"], by=people["carol"], preference=-1, gold=gold_b)
    _judged(tasks["erin1"], by=people["dave"], preference=2, gold=gold_b)
    return {"people": people, "tasks": tasks, "axis": axis}


def _records(filters: ExportFilters | None = None) -> dict[int, dict]:
    return {r["task_id"]: r for r in native_records(filters or ExportFilters())}


def _task_ids(world, *names: str) -> list[int]:
    return sorted(world["tasks"][name].pk for name in names)


# --- the quality block ---------------------------------------------------------------------


def test_a_swapped_second_judgement_is_given_in_the_turns_slots(world, project):
    carol1 = world["tasks"]["carol1"]
    record = _records()[carol1.pk]
    quality = record["quality"]
    turn = Turn.objects.get(task=carol1)
    assert record["schema_version"] == 3
    assert quality["agreement_group"] == f"turn-{turn.pk}"
    [second] = quality["second_judgements"]
    judging = JudgingTask.objects.get(turn=turn, gold__isnull=True)
    assert second == {
        "contractor_id": world["people"]["dave"].pk,
        # Shown +2 (their B) with their A at 5: the turn's A is better, and scored 1.
        "preference": -2,
        "scores": _scores(project, 1, 5),
        "justification": "Second look.",
        "submitted_at": judging.submitted_at.isoformat(),
        "is_gold": False,
    }
    assert quality["gold"] is None


def test_the_flags_are_those_of_the_round_the_record_carries(world):
    record = _records()[world["tasks"]["carol1"].pk]
    assert record["round_judged"] == 2
    # Round 1's "fast" belongs to the judgement it replaced.
    assert record["quality"]["flags"] == ["duplicate", "flat_scores"]
    assert _records()[world["tasks"]["carol2"].pk]["quality"]["flags"] == []


def test_a_gold_turn_carries_its_answer_and_its_servings(world):
    records = _records()
    fay1 = records[world["tasks"]["fay1"].pk]["quality"]
    assert fay1["gold"] == {
        "expected": -1, "score_ranges": {"A": {world["axis"]: [3, 5]}}, "is_active": True,
    }  # fmt: skip
    people = world["people"]
    assert [(s["contractor_id"], s["preference"], s["is_gold"]) for s in fay1["second_judgements"]] == [
        (people["carol"].pk, -1, True), (people["dave"].pk, 1, True),
        (people["erin"].pk, -3, True),
    ]  # fmt: skip
    erin1 = records[world["tasks"]["erin1"].pk]["quality"]
    assert erin1["gold"]["expected"] == 1
    # fay's taken (unsubmitted) task is not a judgement yet.
    assert {s["contractor_id"] for s in erin1["second_judgements"]} == {
        people["carol"].pk, people["dave"].pk,
    }  # fmt: skip


def test_a_turn_nobody_else_judged_has_no_agreement_group(world):
    GoldTurn.objects.filter(turn__task=world["tasks"]["erin1"]).update(is_active=False)
    JudgingTask.objects.filter(turn__task=world["tasks"]["erin1"]).delete()
    quality = _records()[world["tasks"]["erin1"].pk]["quality"]
    assert quality["agreement_group"] is None and quality["second_judgements"] == []
    # An inactive gold turn still has its known answer.
    assert quality["gold"] == {"expected": 1, "score_ranges": {}, "is_active": False}


def test_the_quality_rows_are_read_per_chunk_not_per_record(world):
    with CaptureQueriesContext(connection) as one_chunk:
        assert len(list(native_records(ExportFilters(), chunk_size=100))) == 6
    with CaptureQueriesContext(connection) as six_chunks:
        assert len(list(native_records(ExportFilters(), chunk_size=1))) == 6

    def quality_queries(context) -> int:
        tables = ("reviews_judgingtask", "reviews_goldturn", "reviews_submissionflag")
        return sum(any(t in q["sql"] for t in tables) for q in context.captured_queries)

    assert quality_queries(one_chunk) == 3
    assert quality_queries(six_chunks) == 3 * 6


def test_the_csv_has_the_agreement_group_gold_and_flags(world):
    rows = list(csv.DictReader(io.StringIO("".join(export_lines(fmt="csv")))))
    by_task = {int(r["task_id"]): r for r in rows}
    carol1 = by_task[world["tasks"]["carol1"].pk]
    assert carol1["agreement_group"] == f"turn-{Turn.objects.get(task=world['tasks']['carol1']).pk}"
    assert carol1["flags"] == "duplicate;flat_scores"
    assert carol1["gold"] == ""
    # -1 stays a number (csv_safe quotes text starting like a formula, not numbers).
    assert by_task[world["tasks"]["fay1"].pk]["gold"] == "-1"
    assert by_task[world["tasks"]["carol2"].pk]["flags"] == ""


def test_the_pairwise_formats_are_unchanged(world):
    trl = "".join(export_lines(fmt="trl")).splitlines()
    assert len(trl) == 6  # no ties among the finals
    for line in trl:
        assert set(json.loads(line)) == {"prompt", "chosen", "rejected"}
    for line in "".join(export_lines(fmt="openai")).splitlines():
        assert set(json.loads(line)) == {"input", "preferred_output", "non_preferred_output"}


def test_datasets_loads_a_native_file_with_and_without_quality_data(world, tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HOME", str(cache / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    path = tmp_path / "native.jsonl"
    call_command("export_dataset", "--format", "native", "-o", str(path), stderr=io.StringIO())
    ds = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(cache / "datasets")
    )
    assert ds.num_rows == 6
    by_task = dict(zip(ds["task_id"], ds["quality"], strict=True))
    fay1 = by_task[world["tasks"]["fay1"].pk]
    assert fay1["gold"]["expected"] == -1
    assert len(fay1["second_judgements"]) == 3
    assert by_task[world["tasks"]["carol2"].pk]["gold"] is None
    assert by_task[world["tasks"]["carol1"].pk]["flags"] == ["duplicate", "flat_scores"]


V2_KEYS = {
    "schema_version", "task_id", "turn", "project", "repository", "clone_url", "commit_sha",
    "base_ref", "task_title", "task_kind", "focus_files", "prompt", "conversation",
    "model_prompt", "model_prompt_status", "candidates", "pair", "identical_candidates",
    "scores", "criterion_preferences", "preference", "preference_label", "preferred_slot",
    "justification", "consistency_warnings", "round_judged", "judgement_history",
    "turn_active_seconds", "task_active_seconds", "contractor_id", "reviewer_ids", "rounds",
    "reviews", "status", "created_at", "submitted_at", "accepted_at", "evidence_agrees",
}  # fmt: skip


def test_an_export_without_quality_data_only_gains_the_empty_block(
    ready_repository, project, contractor, reviewer
):
    task = _accepted(project=project, repository=ready_repository, contractor=contractor,
                     reviewer=reviewer, preference=-2)  # fmt: skip
    SubmissionFlag.objects.all().delete()
    [record] = native_records(ExportFilters())
    assert set(record) == V2_KEYS | {"quality"}
    assert record["schema_version"] == exports.NATIVE_SCHEMA_VERSION == 3
    assert record["quality"] == {
        "agreement_group": None, "second_judgements": [], "gold": None, "flags": [],
    }  # fmt: skip
    assert record["task_id"] == task.pk and record["preference"] == -2
    [header, row] = list(csv.reader(io.StringIO("".join(export_lines(fmt="csv")))))
    assert header[-3:] == ["agreement_group", "gold", "flags"]
    assert row[-3:] == ["", "", ""]


# --- the thresholds ------------------------------------------------------------------------


def test_direction_agreement_counts_each_pair_for_both_raters(world):
    people = world["people"]
    counts = contractor_direction_agreement()
    assert counts == {
        people["carol"].pk: (1, 3), people["dave"].pk: (2, 4), people["erin"].pk: (1, 1),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("threshold", "kept"),
    [
        # Nobody is measured without pairs: fay is left out even at 0.
        (0, ["carol1", "carol2", "dave1", "dave2", "erin1"]),
        # At exactly the share: carol's 1 of 3 is kept, just above it is not.
        (1 / 3, ["carol1", "carol2", "dave1", "dave2", "erin1"]),
        (0.34, ["dave1", "dave2", "erin1"]),
        (0.5, ["dave1", "dave2", "erin1"]),
        (0.5001, ["erin1"]),
        (1, ["erin1"]),
    ],
)
def test_the_agreement_threshold_keeps_contractors_at_or_above_it(world, threshold, kept):
    records = _records(ExportFilters(min_contractor_agreement=threshold))
    assert sorted(records) == _task_ids(world, *kept)


@pytest.mark.parametrize(
    ("threshold", "kept"),
    [
        (0, ["carol1", "carol2", "dave1", "dave2", "erin1"]),
        (0.5, ["carol1", "carol2", "dave1", "dave2"]),
        (0.51, []),
    ],
)
def test_the_gold_threshold_keeps_contractors_at_or_above_it(world, threshold, kept):
    records = _records(ExportFilters(min_gold_accuracy=threshold))
    assert sorted(records) == _task_ids(world, *kept)


def test_both_thresholds_combine(world):
    both = ExportFilters(min_contractor_agreement=0.5, min_gold_accuracy=0.5)
    assert sorted(_records(both)) == _task_ids(world, "dave1", "dave2")
    assert exports.judged_turn_count(both) == 2


def test_the_thresholds_are_measured_on_the_project_filtered_on(world, project):
    # carol2 (a pair where carol and dave disagreed) moves to another project: on this
    # project carol agreed on 1 of 2 pairs, on all of them still 1 of 3.
    carol2 = world["tasks"]["carol2"]
    Task.objects.filter(pk=carol2.pk).update(project=ProjectFactory(name="Elsewhere"))
    people = world["people"]
    assert contractor_direction_agreement(project=project)[people["carol"].pk] == (1, 2)
    assert contractor_direction_agreement()[people["carol"].pk] == (1, 3)
    on_this = ExportFilters(project_id=project.pk, min_contractor_agreement=0.5)
    assert sorted(_records(on_this)) == _task_ids(world, "carol1", "dave1", "dave2", "erin1")
    on_all = ExportFilters(min_contractor_agreement=0.5)
    assert sorted(_records(on_all)) == _task_ids(world, "dave1", "dave2", "erin1")


# --- validation and plumbing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"min_contractor_agreement": 1.5},
            r"minimum contractor agreement is a share between 0 and 1",
        ),
        (
            {"min_contractor_agreement": -0.1},
            r"minimum contractor agreement is a share between 0 and 1",
        ),
        ({"min_gold_accuracy": 2}, r"minimum gold accuracy is a share between 0 and 1.*not 2"),
        ({"min_gold_accuracy": float("nan")}, r"minimum gold accuracy is a share"),
        ({"min_gold_accuracy": True}, r"minimum gold accuracy is a share"),
        ({"min_gold_accuracy": "0.5"}, r"minimum gold accuracy is a share"),
    ],
)
def test_out_of_range_thresholds_are_refused(fields, message):
    with pytest.raises(ApplicationError, match=message):
        ExportFilters(**fields)


@pytest.mark.parametrize("value", [0, 1, 0.8])
def test_thresholds_in_range_are_accepted(value):
    assert ExportFilters(min_gold_accuracy=value).min_gold_accuracy == value


def test_the_thresholds_round_trip_through_json():
    filters = ExportFilters(min_contractor_agreement=0.75, min_gold_accuracy=1)
    stored = json.loads(json.dumps(filters.to_json()))
    assert stored["min_contractor_agreement"] == 0.75 and stored["min_gold_accuracy"] == 1
    assert ExportFilters.from_json(stored) == filters
    assert ExportFilters.from_json({}).min_contractor_agreement is None


def test_the_export_form_takes_and_checks_the_thresholds(db):
    form = ExportForm({"format": "native", "min_contractor_agreement": "0.8",
                       "min_gold_accuracy": ""})  # fmt: skip
    assert form.is_valid(), form.errors
    assert form.filters().min_contractor_agreement == 0.8
    assert form.filters().min_gold_accuracy is None
    bad = ExportForm({"format": "native", "min_gold_accuracy": "1.2",
                      "min_contractor_agreement": "lots"})  # fmt: skip
    assert not bad.is_valid()
    assert bad.errors["min_gold_accuracy"] == [
        "The minimum gold accuracy is a share between 0 and 1 (e.g. 0.8)."
    ]
    assert bad.errors["min_contractor_agreement"] == [
        "The minimum contractor agreement is a share between 0 and 1 (e.g. 0.8)."
    ]


def test_the_export_page_shows_the_thresholds_and_stores_them(admin_user, client, project):
    client.force_login(admin_user)
    page = client.get(reverse("reviews:export")).content.decode()
    assert 'name="min_contractor_agreement"' in page and 'name="min_gold_accuracy"' in page
    assert "Contractors with no gold turn graded are left out." in page
    refused = client.post(reverse("reviews:export"), {"format": "native",
                                                      "min_gold_accuracy": "7"})  # fmt: skip
    assert refused.status_code == 400
    assert "The minimum gold accuracy is a share between 0 and 1" in refused.content.decode()
    assert ExportJob.objects.count() == 0
    response = client.post(reverse("reviews:export"), {"format": "native",
                                                       "min_contractor_agreement": "0.7"})  # fmt: skip
    assert response.status_code == 302
    assert ExportJob.objects.get().filters["min_contractor_agreement"] == 0.7


def test_the_api_takes_the_thresholds(admin_user, project):
    api = api_client_for(admin_user)
    response = api.post(reverse("api-exports"), {"format": "csv", "min_gold_accuracy": 0.9},
                        format="json")  # fmt: skip
    assert response.status_code == 202, response.content
    assert ExportJob.objects.get().filters["min_gold_accuracy"] == 0.9
    refused = api.post(reverse("api-exports"), {"format": "csv", "min_gold_accuracy": 1.9},
                       format="json")  # fmt: skip
    assert refused.status_code == 400
    assert "minimum gold accuracy is a share between 0 and 1" in refused.content.decode()


def test_the_command_takes_the_thresholds(world, tmp_path):
    out = tmp_path / "out.jsonl"
    call_command("export_dataset", "--min-contractor-agreement", "0.5",
                 "--min-gold-accuracy", "0.5", "-o", str(out))  # fmt: skip
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["task_id"] for r in records) == _task_ids(world, "dave1", "dave2")
    with pytest.raises(CommandError, match="minimum contractor agreement is a share between 0"):
        call_command("export_dataset", "--min-contractor-agreement", "2", "-o", str(out))
