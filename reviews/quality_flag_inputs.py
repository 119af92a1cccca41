"""What the reviewers' flags read at a submit (reviews.quality_flags), in one statement.

The flags run inside the submit's transaction, and a submit's budget is 15 ms of server CPU
(issue 19). Read through the ORM, their inputs took four queries: each costs ~0.5-1 ms of
Django CPU to compile and turn into rows, and the contractor's last DUPLICATE_LOOKBACK
signatures came back as as many rows, each decoded on its own. On PostgreSQL one statement
returns every input as one JSON document, decoded by one orjson call, with the signatures
packed into one hex string (one bytes.fromhex, no integer parsed); elsewhere (the SQLite
development default) the same inputs come from the ORM. Both readers are tested against each
other (tests/reviews/test_quality_flags.py).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import orjson
from django.db import connection
from django.db.models import F

from marlin.database import is_postgresql
from reviews.minhash import SIGNATURE_BYTES
from tasks.models import Judgement, Submission

# The median follows the project's recent pace, read from a bounded window.
FAST_LOOKBACK = 1000
# How far back a contractor's earlier justifications are compared: enough to catch a stock
# text reused over weeks, while each submit reads a bounded number of signatures.
DUPLICATE_LOOKBACK = 500
# Ten decisive preferences in a row on the same slot happen by chance with probability
# 2 * 0.5**10 (about 0.2%) when the slots are drawn at random per turn: a position bias.
STREAK_LENGTH = 10


@dataclass(frozen=True)
class OwnJudgement:
    """A judgement of the submitted round: its signature (empty when never computed) and its
    text, from which a missing signature is computed."""

    pk: int
    signature: bytes
    turn_number: int
    justification: str


@dataclass(frozen=True)
class EarlierSignatures:
    """The signatures of earlier judgements packed one after another (SIGNATURE_BYTES each,
    newest first), with the task and turn of each, in the same order."""

    signatures: bytes
    task_ids: list[int]
    turn_numbers: list[int]


@dataclass(frozen=True)
class Verdict:
    preference: int
    scores: object


@dataclass(frozen=True)
class FlagInputs:
    """Everything the four rules look at.

    - `median_seconds`, `history`: the median time on task of the project's last
      FAST_LOOKBACK submissions before this one, and how many there were (None for none).
    - `own`: this round's judgements of the submitted task, by turn number.
    - `earlier`: the signatures of the contractor's latest DUPLICATE_LOOKBACK judgements in
      other tasks (those without one, or of another NUM_HASHES, left out).
    - `latest`, `decisive`: the contractor's latest STREAK_LENGTH judgements, and latest
      STREAK_LENGTH that are not ties, newest first; one per turn, of its task's current round
      (a revision copies the earlier round's rows, and counting both would let one bounced
      task fill half a streak).
    """

    median_seconds: float | None
    history: int
    own: list[OwnJudgement]
    earlier: EarlierSignatures
    latest: list[Verdict]
    decisive: list[Verdict]


def flag_inputs(*, submission: Submission) -> FlagInputs:
    if is_postgresql():
        return flag_inputs_in_one_statement(submission=submission)
    return flag_inputs_from_the_orm(submission=submission)


# Each part is a scalar subquery building one JSON value; the statement's one row is a JSON
# array of them, cast to text so that orjson (not psycopg2's json.loads) decodes it. Every
# list is aggregated with its own ORDER BY: an aggregate keeps no order of its inputs.
_STREAK = """
  (SELECT coalesce(json_agg(json_build_array(l.preference, l.scores)
                            ORDER BY l.created_at DESC, l.id DESC), '[]')
     FROM (SELECT j.id, j.created_at, j.preference, j.scores FROM tasks_judgement j
             JOIN tasks_turn tu ON tu.id = j.turn_id
             JOIN tasks_task t ON t.id = tu.task_id
            WHERE t.contractor_id = %(contractor)s AND j.round = t.round {condition}
            ORDER BY j.created_at DESC, j.id DESC LIMIT %(streak)s) l)"""

_ONE_STATEMENT = """
SELECT json_build_array(
  (SELECT json_build_array(
            percentile_cont(0.5) WITHIN GROUP (ORDER BY w.active_seconds), count(*))
     FROM (SELECT s.active_seconds FROM tasks_submission s
             JOIN tasks_task t ON t.id = s.task_id
            WHERE t.project_id = %(project)s AND s.id < %(submission)s
            ORDER BY s.id DESC LIMIT %(fast_lookback)s) w),
  (SELECT coalesce(json_agg(json_build_array(j.id, encode(j.minhash, 'hex'), tu.number,
                                              j.justification)
                            ORDER BY tu.number), '[]')
     FROM tasks_judgement j JOIN tasks_turn tu ON tu.id = j.turn_id
    WHERE tu.task_id = %(task)s AND j.round = %(round)s),
  (SELECT json_build_array(
            coalesce(encode(string_agg(e.minhash, ''::bytea ORDER BY e.created_at DESC, e.id DESC),
                            'hex'), ''),
            coalesce(json_agg(e.task_id ORDER BY e.created_at DESC, e.id DESC), '[]'),
            coalesce(json_agg(e.number ORDER BY e.created_at DESC, e.id DESC), '[]'))
     FROM (SELECT j.id, j.created_at, j.minhash, tu.task_id, tu.number
             FROM tasks_judgement j
             JOIN tasks_turn tu ON tu.id = j.turn_id
             JOIN tasks_task t ON t.id = tu.task_id
            WHERE t.contractor_id = %(contractor)s AND tu.task_id <> %(task)s
            ORDER BY j.created_at DESC, j.id DESC LIMIT %(duplicate_lookback)s) e
    WHERE length(e.minhash) = %(signature_bytes)s),
  {latest},
  {decisive}
)::text
""".format(  # noqa: S608 - built from this module's constant fragments, no input
    latest=_STREAK.format(condition=""), decisive=_STREAK.format(condition="AND j.preference <> 0")
)


def flag_inputs_in_one_statement(*, submission: Submission) -> FlagInputs:
    """PostgreSQL: the inputs in one statement and one decode."""
    task = submission.task
    with connection.cursor() as cursor:
        cursor.execute(
            _ONE_STATEMENT,
            {
                "project": task.project_id,
                "submission": submission.pk,
                "task": task.pk,
                "round": submission.round,
                "contractor": task.contractor_id,
                "fast_lookback": FAST_LOOKBACK,
                "duplicate_lookback": DUPLICATE_LOOKBACK,
                "streak": STREAK_LENGTH,
                "signature_bytes": SIGNATURE_BYTES,
            },
        )
        (document,) = cursor.fetchone()
    (median, history), own, earlier, latest, decisive = orjson.loads(document)
    signatures, task_ids, turn_numbers = earlier
    return FlagInputs(
        median_seconds=median,
        history=history,
        own=[
            OwnJudgement(pk, bytes.fromhex(signature), number, justification)
            for pk, signature, number, justification in own
        ],
        earlier=EarlierSignatures(bytes.fromhex(signatures), task_ids, turn_numbers),
        latest=[Verdict(*row) for row in latest],
        decisive=[Verdict(*row) for row in decisive],
    )


def flag_inputs_from_the_orm(*, submission: Submission) -> FlagInputs:
    """Any database: the same inputs through the ORM, five reads."""
    task = submission.task
    window = list(
        Submission.objects.filter(task__project_id=task.project_id, pk__lt=submission.pk)
        .order_by("-pk")
        .values_list("active_seconds", flat=True)[:FAST_LOOKBACK]
    )
    own = (
        Judgement.objects.filter(turn__task_id=task.pk, round=submission.round)
        .order_by("turn__number")
        .values_list("pk", "minhash", "turn__number", "justification")
    )
    lookback = (
        Judgement.objects.filter(turn__task__contractor_id=task.contractor_id)
        .exclude(turn__task_id=task.pk)
        .order_by("-created_at", "-pk")
        .values_list("minhash", "turn__task_id", "turn__number")[:DUPLICATE_LOOKBACK]
    )
    earlier = [
        (bytes(signature), task_id, number)
        for signature, task_id, number in lookback
        if len(signature) == SIGNATURE_BYTES
    ]
    streak = (
        Judgement.objects.filter(turn__task__contractor_id=task.contractor_id)
        .filter(round=F("turn__task__round"))
        .order_by("-created_at", "-pk")
        .values_list("preference", "scores")
    )
    return FlagInputs(
        median_seconds=statistics.median(window) if window else None,
        history=len(window),
        own=[
            OwnJudgement(pk, bytes(signature), number, justification)
            for pk, signature, number, justification in own
        ],
        earlier=EarlierSignatures(
            b"".join(signature for signature, _, _ in earlier),
            [task_id for _, task_id, _ in earlier],
            [number for _, _, number in earlier],
        ),
        latest=[Verdict(*row) for row in streak[:STREAK_LENGTH]],
        decisive=[Verdict(*row) for row in streak.exclude(preference=0)[:STREAK_LENGTH]],
    )
