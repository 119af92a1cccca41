"""Dashboard aggregates: counts over the judgements the dashboard reads, kept up to date as
review decisions are made, so a page reads O(models + contractors) rows whatever the
number of judged turns.

What is counted is what reviews.dashboard.dashboard_from_scratch reads: the final judgement
(the accepted round) of every turn of an accepted task, the succeeded candidates of accepted
tasks, every review decision, and the closed (accepted or rejected) tasks. Only
review_decide changes that set: an accepted task is final (ACCEPTED has no way out), an
audit's overturn leaves the task and its judgements as they are (reviews/quality_audits.py)
and a bounce only adds a decision. So `aggregates_add_decision`, called by review_decide in
the decision's transaction, is the one writer; `aggregates_rebuild` recomputes every table
from scratch (the backfill, and the check that the two agree).

Both run the same statement (`_STATEMENT`), scoped to one task and one review or to
everything, so the incremental rows and the rebuilt ones are the same by construction. Each
row is added with INSERT ... ON CONFLICT DO UPDATE SET n = n + EXCLUDED.n, never read and
written back: two reviewers accepting at once each add their own counts (the second waits
on the first's row lock, then adds to the committed value). Rows are written in key order,
so two decisions touching the same rows lock them in the same order and cannot deadlock.

Two other writers keep their own counts, rebuilt here too: audit_decide (overturn rates per
reviewer, `aggregates_add_audit`) and judging_task_submit (agreement count tables,
reviews.quality_agreement.agreement_counts_add).

Kept on PostgreSQL only (`aggregates_kept`): the statements use its JSON operators, FILTER
and data-modifying CTEs. On SQLite, the embedded single-user default with a few thousand
judgements at most, the writers do nothing and every page computes from scratch.

Not counted here, read per request instead: submissions and reviews per day (the last 30
days only, through the created_at indexes), evidence verdicts (set by the evidence worker
after acceptance), the time on task of tasks not yet closed, and gold accuracy (graded in
Python per gold judging task, a few per contractor).
"""

from __future__ import annotations

import hashlib

from django.db import connection, transaction

from marlin.database import is_postgresql
from reviews import quality_agreement
from reviews.models import (
    AgreementCount,
    CandidateCount,
    ContractorSlotCount,
    DayCount,
    DayFilled,
    ProjectDecisionCount,
    Review,
    ReviewAudit,
    ReviewerAuditCount,
    ScoreCount,
    TaskSecondsCount,
)
from tasks.models import Candidate, Judgement, PairOutcomeCount, Task, Turn

_CLOSED = (Task.Status.ACCEPTED, Task.Status.REJECTED)


def aggregates_kept() -> bool:
    """Whether the writers keep the counts and the pages read them (see the module's doc)."""
    return is_postgresql()


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _upsert(model, keys: list[str], counts: list[str]) -> str:
    """INSERT INTO model (keys, counts) {select} ON CONFLICT (keys) DO UPDATE adding counts."""
    table = _table(model)
    added = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in counts)
    return (
        f"INSERT INTO {table} ({', '.join(keys + counts)}) {{select}} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"
    )


def _statement() -> str:
    """One statement adding every aggregate of the tasks and reviews in scope.

    {task_scope} and {review_scope} are a condition on tasks_task "t" and reviews_review "r".
    Only table and column names and fixed literals are written into it; ids are parameters.
    """
    judgement, turn, task, candidate, review = (
        _table(m) for m in (Judgement, Turn, Task, Candidate, Review)
    )
    accepted = f"'{Task.Status.ACCEPTED}'"
    closed = ", ".join(f"'{s}'" for s in _CLOSED)
    succeeded = f"'{Candidate.Status.SUCCEEDED}'"
    bounce = f"'{Review.Decision.BOUNCE}'"
    # The final judgement of each turn of an accepted task in scope, with the endpoints in
    # slot A and slot B (null when the slot has no candidate, as the dashboard's join).
    final = f"""
        SELECT t.project_id, t.contractor_id, j.preference, j.scores,
               ca.endpoint_id AS ea, cb.endpoint_id AS eb
        FROM {judgement} j
        JOIN {turn} u ON u.id = j.turn_id
        JOIN {task} t ON t.id = u.task_id
        LEFT JOIN {candidate} ca ON ca.turn_id = u.id AND ca.slot = 'A'
        LEFT JOIN {candidate} cb ON cb.turn_id = u.id AND cb.slot = 'B'
        WHERE t.status = {accepted} AND j.round = t.round AND {{task_scope}}
    """  # noqa: S608 - fixed table names and literals only

    def slot_object(slot: str) -> str:
        return (
            f"CASE WHEN jsonb_typeof(f.scores -> '{slot}') = 'object' "
            f"THEN f.scores -> '{slot}' ELSE '{{{{}}}}'::jsonb END"
        )

    # o: 1 when slot A won, -1 when B won, 0 for a tie. Board "" is the preference (negative
    # prefers A); any other board is an axis, the higher score winning, counted only when
    # both candidates have a number on it (the leaderboard's comparison of the two scores).
    pair_select = f"""
        SELECT project_id, ea, eb, axis,
               count(*) FILTER (WHERE o > 0), count(*) FILTER (WHERE o < 0),
               count(*) FILTER (WHERE o = 0)
        FROM (
            SELECT f.project_id, f.ea, f.eb, '' AS axis, -sign(f.preference) AS o
            FROM final f WHERE f.ea IS NOT NULL AND f.eb IS NOT NULL
            UNION ALL
            SELECT f.project_id, f.ea, f.eb, k.key,
                   sign((k.value #>> '{{{{}}}}')::float
                        - ((f.scores -> 'B' -> k.key) #>> '{{{{}}}}')::float)
            FROM final f CROSS JOIN LATERAL jsonb_each({slot_object("A")}) k
            WHERE f.ea IS NOT NULL AND f.eb IS NOT NULL
              AND jsonb_typeof(k.value) = 'number'
              AND jsonb_typeof(f.scores -> 'B' -> k.key) = 'number'
        ) o
        GROUP BY project_id, ea, eb, axis ORDER BY project_id, ea, eb, axis
    """  # noqa: S608 - fixed table names and literals only
    slot_select = """
        SELECT project_id, contractor_id, count(*) FILTER (WHERE preference < 0),
               count(*) FILTER (WHERE preference > 0), count(*) FILTER (WHERE preference = 0)
        FROM final GROUP BY project_id, contractor_id ORDER BY project_id, contractor_id
    """
    # A score counts when it is a whole number from 1 to 5 (the dashboard's check).
    score_select = f"""
        SELECT project_id, endpoint, key, value::text::int, count(*)
        FROM (
            SELECT f.project_id, f.ea AS endpoint, e.key, e.value
            FROM final f CROSS JOIN LATERAL jsonb_each({slot_object("A")}) e
            WHERE f.ea IS NOT NULL
            UNION ALL
            SELECT f.project_id, f.eb, e.key, e.value
            FROM final f CROSS JOIN LATERAL jsonb_each({slot_object("B")}) e
            WHERE f.eb IS NOT NULL
        ) s
        WHERE jsonb_typeof(value) = 'number' AND value::text IN ('1', '2', '3', '4', '5')
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    """  # noqa: S608 - fixed table names and literals only
    candidate_select = f"""
        SELECT t.project_id, c.endpoint_id, count(*) FILTER (WHERE c.applies_cleanly), count(*)
        FROM {candidate} c JOIN {turn} u ON u.id = c.turn_id JOIN {task} t ON t.id = u.task_id
        WHERE t.status = {accepted} AND c.status = {succeeded} AND {{task_scope}}
        GROUP BY 1, 2 ORDER BY 1, 2
    """  # noqa: S608 - fixed table names and literals only
    seconds_select = f"""
        SELECT t.project_id, t.active_seconds, count(*) FROM {task} t
        WHERE t.status IN ({closed}) AND t.submitted_at IS NOT NULL AND {{task_scope}}
        GROUP BY 1, 2 ORDER BY 1, 2
    """  # noqa: S608 - fixed table names and literals only
    # Every decided round is one review, so a closed task's reviews are its rounds.
    decision_select = f"""
        SELECT project_id, sum(judged), sum(reviews), sum(bounces), sum(closed), sum(rounds)
        FROM (
            SELECT project_id, count(*) AS judged, 0 AS reviews, 0 AS bounces,
                   0 AS closed, 0 AS rounds
            FROM final GROUP BY project_id
            UNION ALL
            SELECT t.project_id, 0, count(*), count(*) FILTER (WHERE r.decision = {bounce}), 0, 0
            FROM {review} r JOIN {task} t ON t.id = r.task_id
            WHERE {{review_scope}} GROUP BY t.project_id
            UNION ALL
            SELECT t.project_id, 0, 0, 0, count(DISTINCT t.id), count(r.id)
            FROM {task} t LEFT JOIN {review} r ON r.task_id = t.id
            WHERE t.status IN ({closed}) AND {{task_scope}} GROUP BY t.project_id
        ) d
        GROUP BY project_id ORDER BY project_id
    """  # noqa: S608 - fixed table names and literals only
    parts = [
        _upsert(
            PairOutcomeCount,
            ["project_id", "endpoint_a_id", "endpoint_b_id", "axis"],
            ["a_won", "b_won", "tied"],
        ).format(select=pair_select),
        _upsert(ContractorSlotCount, ["project_id", "contractor_id"],
                ["a_won", "b_won", "tied"]).format(select=slot_select),
        _upsert(ScoreCount, ["project_id", "endpoint_id", "axis", "score"], ["n"]).format(
            select=score_select
        ),
        _upsert(CandidateCount, ["project_id", "endpoint_id"], ["clean", "total"]).format(
            select=candidate_select
        ),
        _upsert(TaskSecondsCount, ["project_id", "seconds"], ["n"]).format(select=seconds_select),
        _upsert(
            ProjectDecisionCount,
            ["project_id"],
            ["judged_turns", "reviews", "bounces", "closed_tasks", "closed_rounds"],
        ).format(select=decision_select),
    ]  # fmt: skip
    writes = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts))
    return f"WITH final AS MATERIALIZED ({final}), {writes} SELECT 1"


_STATEMENT = _statement()
# Named after the statement's text, so a process running changed code never executes a
# statement another version prepared on a pooled session.
_PREPARED = f"marlin_aggregates_{hashlib.sha256(_STATEMENT.encode()).hexdigest()[:12]}"
# Everything the rebuild recomputes (and locks while it does).
AGGREGATE_MODELS = (
    PairOutcomeCount,
    ContractorSlotCount,
    ScoreCount,
    CandidateCount,
    TaskSecondsCount,
    ProjectDecisionCount,
    ReviewerAuditCount,
    AgreementCount,
)


def _audit_statement() -> str:
    audit, review, task = (_table(m) for m in (ReviewAudit, Review, Task))
    decided = ", ".join(
        f"'{s}'" for s in (ReviewAudit.Status.UPHELD, ReviewAudit.Status.OVERTURNED)
    )
    select = f"""
        SELECT t.project_id, r.reviewer_id, count(*),
               count(*) FILTER (WHERE a.status = '{ReviewAudit.Status.OVERTURNED}')
        FROM {audit} a JOIN {review} r ON r.id = a.review_id JOIN {task} t ON t.id = r.task_id
        WHERE a.status IN ({decided}) AND {{audit_scope}}
        GROUP BY 1, 2 ORDER BY 1, 2
    """  # noqa: S608 - fixed table names and literals only
    return _upsert(
        ReviewerAuditCount, ["project_id", "reviewer_id"], ["audited", "overturned"]
    ).format(select=select)


_AUDIT_STATEMENT = _audit_statement()


def aggregates_add_audit(*, audit: ReviewAudit) -> None:
    """Add a just decided audit to its reviewer's counts (audit_decide's transaction)."""
    if not aggregates_kept():
        return
    with connection.cursor() as cursor:
        cursor.execute(_AUDIT_STATEMENT.format(audit_scope="a.id = %s"), [audit.pk])


def aggregates_add_decision(*, task: Task, review: Review) -> None:
    """Add one review decision to the aggregates: the review itself, and when it closed the
    task (accepted or rejected) the task, and when it accepted, its judgements and
    candidates. Called by review_decide inside the decision's transaction, after the task's
    status changed."""
    if not aggregates_kept():
        return
    with connection.cursor() as cursor:
        # Planning the statement takes longer than running it (~9 ms against ~2 ms at 1M
        # judged turns), so it is prepared once per database session and then executed.
        cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [_PREPARED])
        if cursor.fetchone() is None:
            scoped = _STATEMENT.format(task_scope="t.id = $1", review_scope="r.id = $2")
            cursor.execute(f"PREPARE {_PREPARED} (bigint, bigint) AS {scoped}")
        # Its plan is the same for every task (all lookups by id): generic from the first
        # run, not re-planned for the first five as PostgreSQL would by default.
        cursor.execute(
            "SET LOCAL plan_cache_mode = force_generic_plan; "
            f"EXECUTE {_PREPARED} (%s, %s); "
            "SET LOCAL plan_cache_mode TO DEFAULT",
            [task.pk, review.pk],
        )


@transaction.atomic
def aggregates_rebuild() -> None:
    """Recompute every aggregate from scratch (backfill, or repair after a manual edit).

    The tables are locked against the incremental writer first: a decision committing
    while the rebuild runs waits, then adds its counts to the rebuilt rows, and a decision
    already committed is in the rebuild's reads. Set-based: a few seconds at 1M judged turns.
    """
    if not aggregates_kept():
        return
    tables = ", ".join(_table(m) for m in AGGREGATE_MODELS)
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
        for model in AGGREGATE_MODELS:
            cursor.execute(f"DELETE FROM {_table(model)}")  # noqa: S608 - a model's table
        cursor.execute(_STATEMENT.format(task_scope="TRUE", review_scope="TRUE"))
        cursor.execute(_AUDIT_STATEMENT.format(audit_scope="TRUE"))
    quality_agreement.agreement_counts_rebuild()
    # The per-day throughput of past days is stored the first time a page needs it.
    DayCount.objects.all().delete()
    DayFilled.objects.all().delete()
