"""Effort and bias flags (issue 18): MinHash, the four rules at their thresholds, the review
queue's filter and sort, the admin's page on a contractor, and that contractors never see them.

History rows are written directly where a test is about a rule; the end-to-end test goes
through task_submit, the views and the API.
"""

from __future__ import annotations

import random
import re
import statistics
import struct

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews import quality_flag_inputs
from reviews.minhash import NUM_HASHES, SIGNATURE_BYTES, jaccard, jaccard_estimate, minhash
from reviews.models import SubmissionFlag
from reviews.quality_flag_inputs import (
    DUPLICATE_LOOKBACK,
    STREAK_LENGTH,
    flag_inputs_from_the_orm,
    flag_inputs_in_one_statement,
)
from reviews.quality_flags import (
    DUPLICATE_THRESHOLD,
    FAST_FRACTION,
    FAST_MIN_HISTORY,
    submission_flags_record,
)
from tasks.models import Judgement, Submission, Task, Turn
from tests.api_clients import api_client_for
from tests.factories import ProjectFactory, RepositoryFactory, pair_of
from tests.tasks.helpers import create_task, generate_all, submit, valid_scores

BASE = (
    "A checks for a zero divisor and raises a clear ValueError before dividing, while B "
    "divides blindly and crashes with ZeroDivisionError on the new test; A also keeps the "
    "existing behaviour for floats."
)
# Four words changed out of 35.
NEAR = (
    "A checks for a zero divisor and raises a helpful ValueError before dividing, whereas B "
    "divides blindly and crashes with ZeroDivisionError on the added test; A also keeps the "
    "existing behaviour for ints."
)
# The same verdict on the same change, in other words: not a copy.
REWORDED = (
    "A rejects a divisor of zero with a ValueError; B lets the ZeroDivisionError escape, "
    "which the new test catches. Otherwise they are the same."
)
UNRELATED = (
    "B adds the missing pagination to the list endpoint and covers it with a test, while A "
    "only changes the page size constant and breaks the existing API contract for clients."
)


# --- builders for history rows ----------------------------------------------------------


@pytest.fixture(autouse=True, params=["one statement", "orm"])
def reader(request, monkeypatch):
    """Every rule is checked with both readers of its inputs: PostgreSQL's one statement and
    the ORM's reads that the SQLite default runs."""
    if request.param == "orm":
        monkeypatch.setattr(quality_flag_inputs, "is_postgresql", lambda: False)
    return request.param


@pytest.fixture
def repository(db):
    return RepositoryFactory()


def _task(*, contractor, project, repository, status=Task.Status.ACCEPTED, round=1) -> Task:
    return Task.objects.create(
        project=project,
        repository=repository,
        contractor=contractor,
        base_ref="main",
        commit_sha="0" * 40,
        title="History task",
        kind=Task.Kind.BUG_FIX,
        status=status,
        round=round,
        submitted_at=timezone.now(),
        **pair_of(project),
    )


def _judge(
    task: Task,
    *,
    preference: int = -2,
    scores: dict | None = None,
    justification: str = "",
    number: int = 1,
    round: int = 1,
) -> Judgement:
    turn, _ = Turn.objects.get_or_create(task=task, number=number, defaults={"prompt": "Fix."})
    # By default words no other judgement shares, so only the rule under test can fire.
    text = justification or " ".join(f"t{task.pk}n{number}r{round}w{i}" for i in range(6))
    return Judgement.objects.create(
        turn=turn,
        round=round,
        preference=preference,
        scores=scores or valid_scores(task.project),
        justification=text,
        minhash=minhash(text),
    )


def _submitted(task: Task, *, active_seconds: int = 1800, round: int = 1) -> Submission:
    return Submission.objects.create(
        task=task,
        round=round,
        active_seconds=active_seconds,
        turn_count=task.turns.count() or 1,
        submitted_by=task.contractor,
    )


def _history(n: int, *, contractor, project, repository, **judge) -> list[Task]:
    tasks = []
    for _ in range(n):
        task = _task(contractor=contractor, project=project, repository=repository)
        _judge(task, **judge)
        _submitted(task)
        tasks.append(task)
    return tasks


def _current(*, contractor, project, repository, active_seconds=1800, **judge) -> Submission:
    task = _task(
        contractor=contractor, project=project, repository=repository, status=Task.Status.SUBMITTED
    )
    _judge(task, **judge)
    return _submitted(task, active_seconds=active_seconds)


def _kinds(submission: Submission) -> set[str]:
    return set(SubmissionFlag.objects.filter(submission=submission).values_list("kind", flat=True))


# --- MinHash ----------------------------------------------------------------------------


def test_a_near_duplicate_is_caught():
    assert 0.6 < jaccard(BASE, NEAR) < 0.7  # a few words changed is far from identical
    assert jaccard_estimate(minhash(BASE), minhash(NEAR)) >= DUPLICATE_THRESHOLD


def test_the_same_verdict_reworded_and_unrelated_text_are_not_duplicates():
    for other in (REWORDED, UNRELATED):
        assert jaccard_estimate(minhash(BASE), minhash(other)) < DUPLICATE_THRESHOLD / 2


def test_case_spacing_and_punctuation_do_not_change_the_signature():
    assert minhash("A is right; B  crashes!") == minhash("a IS right  b crashes.")
    assert len(minhash(BASE)) == SIGNATURE_BYTES == 8 * NUM_HASHES
    assert minhash("  ...  ") == b""
    assert jaccard_estimate(b"", b"") == 0.0  # empty text repeats nothing


def test_the_estimate_is_close_to_the_true_jaccard():
    rng = random.Random(18)  # noqa: S311 - a fixed sample of texts, not a secret
    vocabulary = [f"word{i}" for i in range(300)]
    errors = []
    for _ in range(150):
        first = [rng.choice(vocabulary) for _ in range(40)]
        second = list(first)
        for _ in range(rng.randint(0, 25)):
            second[rng.randrange(40)] = rng.choice(vocabulary)
        a, b = " ".join(first), " ".join(second)
        errors.append(jaccard_estimate(minhash(a), minhash(b)) - jaccard(a, b))
    # Unbiased, with about the spread 64 hashes promise (standard error <= 0.0625).
    assert abs(statistics.mean(errors)) < 0.02
    assert statistics.pstdev(errors) < 0.07
    assert max(abs(e) for e in errors) < 0.25


# --- FAST -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earlier", "seconds", "flagged"),
    [
        (FAST_MIN_HISTORY, 1000 // FAST_FRACTION - 1, True),  # just below a quarter
        (FAST_MIN_HISTORY, 1000 // FAST_FRACTION, False),  # exactly a quarter
        (FAST_MIN_HISTORY - 1, 10, False),  # too little history for a median
    ],
)
def test_fast_is_below_a_quarter_of_the_projects_median(
    contractor, other_contractor, project, repository, earlier, seconds, flagged
):
    for i in range(earlier):
        task = _task(contractor=other_contractor, project=project, repository=repository)
        # Median 1000 s over the project's earlier submissions, whoever made them.
        _submitted(task, active_seconds=[900, 1000, 1100][i % 3] if i < 9 else 1000)
    current = _current(
        contractor=contractor, project=project, repository=repository, active_seconds=seconds
    )
    flags = submission_flags_record(submission=current)
    assert (SubmissionFlag.Kind.FAST in _kinds(current)) is flagged
    if flagged:
        assert flags[0].detail == (
            "Submitted after 4 min of work against a project median of 17 min over the last "
            "10 submissions."
        )


def test_fast_ignores_other_projects(contractor, project, repository):
    elsewhere = ProjectFactory()
    for _ in range(FAST_MIN_HISTORY):
        _submitted(_task(contractor=contractor, project=elsewhere, repository=repository))
    current = _current(
        contractor=contractor, project=project, repository=repository, active_seconds=1
    )
    submission_flags_record(submission=current)
    assert _kinds(current) == set()


# --- DUPLICATE --------------------------------------------------------------------------


def test_a_near_duplicate_of_an_earlier_task_is_flagged_and_named(contractor, project, repository):
    earlier = _task(contractor=contractor, project=project, repository=repository)
    _judge(earlier, justification=BASE)
    current = _current(
        contractor=contractor, project=project, repository=repository, justification=NEAR
    )
    submission_flags_record(submission=current)
    flag = SubmissionFlag.objects.get(submission=current)
    assert flag.kind == SubmissionFlag.Kind.DUPLICATE
    assert re.fullmatch(
        rf"The justification of turn 1 is about \d\d% alike the one of turn 1 in "
        rf"task #{earlier.pk}\.",
        flag.detail,
    )
    # The signature is stored, so the next submission compares without the text.
    assert bytes(Judgement.objects.get(turn__task=current.task).minhash) == minhash(NEAR)


def test_reworded_justifications_and_other_contractors_copies_are_not_flagged(
    contractor, other_contractor, project, repository
):
    _judge(
        _task(contractor=contractor, project=project, repository=repository),
        justification=REWORDED,
    )
    _judge(
        _task(contractor=other_contractor, project=project, repository=repository),
        justification=BASE,
    )
    current = _current(
        contractor=contractor, project=project, repository=repository, justification=BASE
    )
    submission_flags_record(submission=current)
    assert _kinds(current) == set()


def test_the_same_tasks_earlier_round_is_not_a_duplicate(contractor, project, repository):
    # Revising copies round 1's judgements into round 2: the same text, not a repeat.
    task = _task(
        contractor=contractor,
        project=project,
        repository=repository,
        status=Task.Status.SUBMITTED,
        round=2,
    )
    _judge(task, justification=BASE, round=1)
    _judge(task, justification=BASE, round=2)
    current = _submitted(task, round=2)
    submission_flags_record(submission=current)
    assert _kinds(current) == set()


@pytest.mark.parametrize(("agreeing", "flagged"), [(32, True), (31, False)])
def test_duplicate_starts_at_the_threshold(contractor, project, repository, agreeing, flagged):
    assert DUPLICATE_THRESHOLD == 32 / NUM_HASHES
    earlier = _judge(_task(contractor=contractor, project=project, repository=repository))
    signature = minhash(BASE)
    # Equal in exactly `agreeing` positions; the others can never match (minhash < 2**61).
    never = struct.pack(">Q", 2**62)
    earlier.minhash = signature[: 8 * agreeing] + never * (NUM_HASHES - agreeing)
    earlier.save()
    current = _current(
        contractor=contractor, project=project, repository=repository, justification=BASE
    )
    submission_flags_record(submission=current)
    assert (SubmissionFlag.Kind.DUPLICATE in _kinds(current)) is flagged


def test_duplicate_looks_back_only_so_far(contractor, project, repository):
    old = _task(contractor=contractor, project=project, repository=repository)
    _judge(old, justification=BASE)
    filler = _judge(_task(contractor=contractor, project=project, repository=repository))
    Judgement.objects.bulk_create(
        [
            Judgement(
                turn=filler.turn,
                round=r,
                preference=-1,
                scores=filler.scores,
                justification=f"Filler {r}",
                minhash=minhash(f"Filler {r}"),
            )
            for r in range(2, DUPLICATE_LOOKBACK + 1)
        ]
    )
    current = _current(
        contractor=contractor, project=project, repository=repository, justification=BASE
    )
    submission_flags_record(submission=current)
    # BASE is the 501st most recent judgement: out of reach.
    assert _kinds(current) == set()
    Judgement.objects.filter(turn=filler.turn, round=DUPLICATE_LOOKBACK).delete()
    submission_flags_record(submission=current)
    assert _kinds(current) == {SubmissionFlag.Kind.DUPLICATE}


# --- the two readers of the rules' inputs ---------------------------------------------------


def _earlier_rows(inputs):
    earlier = inputs.earlier
    signatures = [
        earlier.signatures[i : i + SIGNATURE_BYTES]
        for i in range(0, len(earlier.signatures), SIGNATURE_BYTES)
    ]
    assert len(signatures) == len(earlier.task_ids) == len(earlier.turn_numbers)
    return list(zip(signatures, earlier.task_ids, earlier.turn_numbers, strict=True))


@pytest.mark.parametrize("history", [0, 1, 10, 11, 37])
def test_both_readers_give_the_rules_the_same_inputs(
    contractor, other_contractor, project, repository, history
):
    rng = random.Random(history)  # noqa: S311 - synthetic data
    for n in range(history):
        task = _task(contractor=contractor, project=project, repository=repository,
                     round=1 + n % 3)  # fmt: skip
        for round_ in range(1, task.round + 1):
            _judge(task, preference=rng.choice([-3, -1, 0, 0, 2]), round=round_,
                   justification=rng.choice(["", BASE, NEAR, UNRELATED]), number=1 + n % 2)  # fmt: skip
        _submitted(task, active_seconds=rng.randrange(60, 7200), round=task.round)
    # A justification without words has no signature to compare.
    _judge(
        _task(contractor=contractor, project=project, repository=repository), justification="..."
    )
    # Another contractor's work counts for the project's median, never for the rest.
    other = _task(contractor=other_contractor, project=project, repository=repository)
    _judge(other, justification=BASE)
    _submitted(other, active_seconds=5)
    current = _current(contractor=contractor, project=project, repository=repository,
                       justification=NEAR, active_seconds=30)  # fmt: skip
    _judge(current.task, number=2, justification=UNRELATED)
    # A judgement written before signatures were stored: the reader gives its text.
    Judgement.objects.filter(turn__task=current.task, turn__number=2).update(minhash=b"")

    sql = flag_inputs_in_one_statement(submission=current)
    orm = flag_inputs_from_the_orm(submission=current)
    assert (sql.median_seconds, sql.history) == (orm.median_seconds, orm.history)
    assert sql.history == min(history + 1, quality_flag_inputs.FAST_LOOKBACK)
    assert [o.turn_number for o in sql.own] == [1, 2] and sql.own[1].signature == b""
    assert sql.own == orm.own
    assert sql.earlier == orm.earlier
    # Newest first, each signature with its own task and turn; judgements without one (no
    # words in the justification) are left out.
    stored = (
        Judgement.objects.filter(turn__task__contractor=contractor)
        .exclude(turn__task=current.task)
        .order_by("-created_at", "-pk")
        .values_list("minhash", "turn__task_id", "turn__number")
    )
    expected = [(bytes(m), task_id, number) for m, task_id, number in stored if len(m)]
    assert _earlier_rows(sql) == expected
    assert len(expected) < len(stored)  # the wordless one, at least
    assert (sql.latest, sql.decisive) == (orm.latest, orm.decisive)
    assert all(v.preference != 0 for v in sql.decisive)


# --- ONE_SLOT and FLAT_SCORES -----------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "flagged"),
    [
        ([-2] * (STREAK_LENGTH - 1), True),  # with the current one: ten on slot A
        ([-2] * (STREAK_LENGTH - 2), False),  # nine
        ([3] + [-2] * (STREAK_LENGTH - 2), False),  # ten, the oldest on B
        ([3] + [-2] * (STREAK_LENGTH - 1), True),  # the B is now the eleventh
        ([-2, 0, 0] + [-2] * (STREAK_LENGTH - 2), True),  # ties do not break a streak
        # Behind more ties than the one read of the latest judgements takes.
        ([-2] * STREAK_LENGTH + [0] * (4 * STREAK_LENGTH), True),
    ],
)
def test_one_slot_needs_the_last_ten_decisive_preferences_on_one_slot(
    contractor, project, repository, history, flagged
):
    for preference in history:
        _judge(
            _task(contractor=contractor, project=project, repository=repository),
            preference=preference,
            scores=valid_scores(project, a=abs(preference) + 1),  # varied: no FLAT_SCORES
        )
    current = _current(contractor=contractor, project=project, repository=repository)
    submission_flags_record(submission=current)
    assert _kinds(current) == ({SubmissionFlag.Kind.ONE_SLOT} if flagged else set())
    if flagged:
        assert SubmissionFlag.objects.get(submission=current).detail == (
            "The contractor's last 10 preferences that were not ties all chose slot A."
        )


def test_a_revised_turn_counts_once_in_a_streak(contractor, project, repository):
    for preference in [-2] * (STREAK_LENGTH - 3):
        _judge(
            _task(contractor=contractor, project=project, repository=repository),
            preference=preference,
            scores=valid_scores(project, a=abs(preference) + 1),
        )
    bounced = _task(contractor=contractor, project=project, repository=repository, round=2)
    _judge(bounced, preference=-1, round=1)
    _judge(bounced, preference=-1, round=2, scores=valid_scores(project, a=5))
    current = _current(contractor=contractor, project=project, repository=repository)
    submission_flags_record(submission=current)
    assert _kinds(current) == set()  # nine turns, not ten judgements


@pytest.mark.parametrize(
    ("same", "different_axis", "flagged"),
    [
        (STREAK_LENGTH - 1, None, True),
        (STREAK_LENGTH - 2, None, False),
        (STREAK_LENGTH - 1, "correctness", False),
    ],
)
def test_flat_scores_needs_ten_identical_score_sheets(
    contractor, project, repository, same, different_axis, flagged
):
    preferences = [-1, 1] * STREAK_LENGTH  # both slots: no ONE_SLOT
    for i in range(same):
        scores = valid_scores(project)
        if different_axis and i == 0:
            scores["B"][different_axis] = 3
        _judge(
            _task(contractor=contractor, project=project, repository=repository),
            preference=preferences[i],
            scores=scores,
        )
    current = _current(contractor=contractor, project=project, repository=repository)
    submission_flags_record(submission=current)
    assert _kinds(current) == ({SubmissionFlag.Kind.FLAT_SCORES} if flagged else set())
    if flagged:
        assert SubmissionFlag.objects.get(submission=current).detail == (
            "The contractor's last 10 judgements all gave the same scores (A 4/4/4/4, B 2/2/2/2)."
        )


def test_recording_twice_adds_nothing(contractor, project, repository):
    _history(STREAK_LENGTH, contractor=contractor, project=project, repository=repository)
    current = _current(
        contractor=contractor, project=project, repository=repository, active_seconds=1
    )
    first = submission_flags_record(submission=current)
    again = submission_flags_record(submission=current)
    assert {f.pk for f in first} == {f.pk for f in again}
    assert _kinds(current) == {
        SubmissionFlag.Kind.FAST,
        SubmissionFlag.Kind.ONE_SLOT,
        SubmissionFlag.Kind.FLAT_SCORES,
    }
    assert SubmissionFlag.objects.filter(submission=current).count() == 3


# --- the review queue -------------------------------------------------------------------


def _queued(*, contractor, project, repository, kinds: list[str], round: int = 1) -> Task:
    task = _task(
        contractor=contractor,
        project=project,
        repository=repository,
        status=Task.Status.SUBMITTED,
        round=round,
    )
    submission = _submitted(task, round=round)
    for kind in kinds:
        SubmissionFlag.objects.create(submission=submission, kind=kind, detail=f"{kind} detail")
    return task


def _queue_rows(client, **params) -> list[int]:
    response = client.get(reverse("reviews:queue"), params)
    assert response.status_code == 200
    return [int(pk) for pk in re.findall(r'<tr data-task="(\d+)"', response.content.decode())]


def test_the_queue_shows_filters_and_sorts_by_flags(
    client, reviewer, contractor, project, repository
):
    plain = _queued(contractor=contractor, project=project, repository=repository, kinds=[])
    # A flag on an earlier round is history, not a flag on what waits now.
    revised = _task(
        contractor=contractor,
        project=project,
        repository=repository,
        status=Task.Status.SUBMITTED,
        round=2,
    )
    old = _submitted(revised, round=1)
    SubmissionFlag.objects.create(submission=old, kind="fast", detail="old")
    _submitted(revised, round=2)
    fast = _queued(contractor=contractor, project=project, repository=repository, kinds=["fast"])
    two = _queued(
        contractor=contractor,
        project=project,
        repository=repository,
        kinds=["one_slot", "flat_scores"],
    )
    client.force_login(reviewer)
    assert _queue_rows(client) == [plain.pk, revised.pk, fast.pk, two.pk]
    assert _queue_rows(client, flag="fast") == [fast.pk]
    assert _queue_rows(client, flag="flat_scores") == [two.pk]
    assert _queue_rows(client, sort="flags") == [two.pk, fast.pk, plain.pk, revised.pk]
    page = client.get(reverse("reviews:queue")).content.decode()
    assert 'data-flag="fast" title="fast detail"' in page
    assert page.count('data-flag="fast"') == 1  # not the earlier round's
    assert "Time on task far below the project&#x27;s median</span>" in page
    assert f'<tr data-task="{two.pk}">' in page


def test_the_queue_api_filters_sorts_and_lists_flags(reviewer, contractor, project, repository):
    plain = _queued(contractor=contractor, project=project, repository=repository, kinds=[])
    fast = _queued(contractor=contractor, project=project, repository=repository, kinds=["fast"])
    api = api_client_for(reviewer)
    url = reverse("api-review-queue")
    rows = api.get(url, {"sort": "flags"}).json()
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert [r["id"] for r in rows] == [fast.pk, plain.pk]
    assert rows[0]["flag_count"] == 1
    assert rows[0]["flags"] == [{"kind": "fast", "detail": "fast detail"}]
    rows = api.get(url, {"flag": "one_slot"}).json()
    assert (rows["results"] if isinstance(rows, dict) else rows) == []


def test_an_unknown_flag_kind_is_refused(client, reviewer):
    client.force_login(reviewer)
    assert client.get(reverse("reviews:queue"), {"flag": "lazy"}).status_code == 400


# --- admin and contractor ---------------------------------------------------------------


def test_the_admin_page_of_a_contractor_lists_their_flags(
    client, admin_user, contractor, other_contractor, project, repository
):
    mine = _queued(contractor=contractor, project=project, repository=repository, kinds=[])
    SubmissionFlag.objects.create(
        submission=mine.submissions.get(), kind="duplicate", detail="<b>copied</b> from #1"
    )
    theirs = _queued(
        contractor=other_contractor, project=project, repository=repository, kinds=["fast"]
    )
    client.force_login(admin_user)
    page = client.get(reverse("admin:auth_user_change", args=[contractor.pk])).content.decode()
    assert "Justification nearly repeats an earlier one" in page
    assert "&lt;b&gt;copied&lt;/b&gt; from #1" in page  # escaped, never markup
    assert f"task #{mine.pk}</a> round 1" in page
    assert f"task #{theirs.pk}" not in page  # only this contractor's


def test_a_flagged_submission_end_to_end_is_seen_by_reviewers_only(
    client, ready_repository, project, contractor, reviewer
):
    # Ten earlier submissions of an hour each: the project now has a median.
    for _ in range(FAST_MIN_HISTORY):
        _submitted(_task(contractor=reviewer, project=project, repository=ready_repository),
                   active_seconds=3600)  # fmt: skip
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    submit(task)  # no heartbeat ever came: 0 seconds on task
    flag = SubmissionFlag.objects.get(submission__task=task)
    assert flag.kind == SubmissionFlag.Kind.FAST
    assert flag.detail == (
        "Submitted after 0 s of work against a project median of 60 min over the last 10 "
        "submissions."
    )
    assert bytes(Judgement.objects.get(turn__task=task).minhash) == minhash(
        "A handles the zero case; B crashes."
    )
    submit(task)  # a double click replays: nothing new
    assert SubmissionFlag.objects.filter(submission__task=task).count() == 1

    client.force_login(reviewer)
    assert _queue_rows(client, flag="fast") == [task.pk]
    review_page = client.get(reverse("reviews:detail", args=[task.pk])).content.decode()
    assert 'id="quality-flags"' in review_page and "project median of 60 min" in review_page

    client.force_login(contractor)
    for url in (reverse("tasks:detail", args=[task.pk]), reverse("tasks:list")):
        page = client.get(url).content.decode()
        assert "project median" not in page and "Time on task far below" not in page
    api = api_client_for(contractor).get(reverse("api-task", args=[task.pk]))
    assert api.status_code == 200
    body = api.content.decode()
    assert "median" not in body and "flag" not in body


def test_the_queue_api_refuses_an_unknown_filter_with_the_fields_message(reviewer):
    api = api_client_for(reviewer)
    answer = api.get(reverse("api-review-queue"), {"flag": "lazy", "sort": "newest"})
    assert answer.status_code == 400
    errors = answer.json()
    assert set(errors) == {"flag", "sort"}
    assert "lazy is not one of the available choices" in errors["flag"][0]
