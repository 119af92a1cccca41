"""Preference dataset exports: one record per judged turn, streamed so memory stays flat."""

from __future__ import annotations

import csv
import io
import numbers
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db.models import Exists, ExpressionWrapper, F, OuterRef, TextField

from marlin.exceptions import ApplicationError
from marlin.lookups import IdList
from marlin.threads import map_ahead
from reviews.export_filters import ExportFilters, check_format
from reviews.models import LineComment, Review
from reviews.quality_export import ChunkQuality, chunk_quality, record_quality
from tasks import evidence, prompting
from tasks.diff_identity import same_change
from tasks.evidence_services import export_evidence
from tasks.models import (
    Candidate,
    EvidenceRun,
    Judgement,
    ModelEndpoint,
    Preference,
    SentPrompt,
    Task,
    Turn,
)

# 2: model_prompt (what the models were sent), judgement_history (every round);
# candidates' line_comments (the contractor's, with path, side and line) added since, and
# each candidate's evidence with the turn's evidence_agrees; and the task's pair (both
# endpoints' names, in the same order on every turn) now that a project has a pool.
# 3: quality (agreement_group, second_judgements in the turn's slots, gold, flags).
NATIVE_SCHEMA_VERSION = 3
# How pairwise formats give the prompt: "model" is what the models were sent (system
# message, repository context, the conversation as they saw it); "bare" the contractor's
# prompts and the answers the conversation continued from, nothing else.
PROMPT_STYLES = ("model", "bare")

# Why a judged turn is not a record of a format (keys of ExportBlock.left_out).
TIE = "ties"
WEAK = "below the minimum strength"
IDENTICAL = "identical candidates"
PROMPTS_DIFFER = "candidates sent different prompts"
AXIS_EQUAL = "equal on this axis"
# Left out by the evidence filter: the evidence points the other way, or cannot tell.
EVIDENCE_AGREES = "where the evidence agrees"
EVIDENCE_DISAGREES = "where the evidence disagrees"
NO_EVIDENCE_VERDICT = "with no evidence verdict"
_EVIDENCE_REASONS = {True: EVIDENCE_AGREES, False: EVIDENCE_DISAGREES, None: NO_EVIDENCE_VERDICT}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def judged_turn_count(filters: ExportFilters) -> int:
    """How many judged turns the filters select: the total an export job counts towards."""
    judged = Judgement.objects.filter(turn=OuterRef("pk"))
    return Turn.objects.filter(Exists(judged), task__in=filters.tasks()).count()


_TASK_FIELDS = (
    "pk", "project__name", "repository__full_name", "repository__clone_url", "commit_sha",
    "base_ref", "title", "kind", "active_seconds", "contractor_id", "round", "status",
    "created_at", "submitted_at", "accepted_at", "focus_files", "first_endpoint_id",
    "second_endpoint_id",
)  # fmt: skip
_TURN_FIELDS = ("pk", "task_id", "number", "prompt", "active_seconds", "has_identical_candidates")
_CANDIDATE_FIELDS = (
    "turn_id", "slot", "endpoint_id", "explanation", "diff", "applies_cleanly", "is_truncated",
    "attempts", "started_at", "finished_at", "input_tokens", "output_tokens", "sent_prompt_id",
)  # fmt: skip
_JUDGEMENT_FIELDS = (
    "turn_id", "round", "preference", "scores_json", "justification", "warnings_json",
)  # fmt: skip
_REVIEW_FIELDS = ("task_id", "round", "decision", "reviewer_id")
_PREFERENCE_LABELS = {p.value: p.label for p in Preference}


@dataclass(frozen=True)
class _ChunkRows:
    """The plain rows (tuples in the _*_FIELDS order) of one chunk of tasks."""

    tasks: list[tuple]
    turns: list[tuple]
    candidates: list[tuple]
    judgements: list[tuple]
    reviews: list[tuple]
    endpoints: dict[int, tuple[str, str, str]]  # id -> (name, provider, model id)
    prompts: dict[int, str]  # sent prompt id -> its messages as JSON text
    # (task id, turn number, slot) -> the contractor's line comments on that candidate
    line_comments: dict[tuple[int, int, str], list[dict]] = field(default_factory=dict)
    # (task id, turn number, slot) -> the candidate's evidence (export_evidence), if it ran
    evidence: dict[tuple[int, int, str], dict] = field(default_factory=dict)
    quality: ChunkQuality = field(default_factory=ChunkQuality)


def _as_text(json_field: str) -> ExpressionWrapper:
    """A JSON column as the database's text, for orjson to decode: Django's JSONField
    decodes with json.loads, several times slower on these rows."""
    return ExpressionWrapper(F(json_field), output_field=TextField())


def _chunks(filters: ExportFilters, chunk_size: int) -> Iterator[_ChunkRows]:
    """The filtered tasks' rows, `chunk_size` tasks at a time, in task order.

    A keyset on the id, so no cursor stays open; each table is one query per chunk returning
    tuples (model objects cost several times the query). Memory stays flat whatever the size.
    """
    tasks = filters.tasks()
    endpoints: dict[int, tuple[str, str, str]] = {}
    last = 0
    while True:
        ids = list(tasks.filter(pk__gt=last).values_list("pk", flat=True)[:chunk_size])
        if not ids:
            return
        last = ids[-1]
        # Every table by this list of ids, not by the filters again: a task that stops
        # matching them meanwhile must not lose half its rows. (A subquery instead of the
        # list cost the database half as much again.)
        candidates = list(
            # Not ordered by the database (sorting these wide rows cost it a fifth more):
            # _chunk_records sorts them.
            Candidate.objects.filter(turn__task_id__any_of=IdList(ids))
            .order_by()
            .values_list(*_CANDIDATE_FIELDS)
        )
        tasks_rows = list(
            Task.objects.filter(pk__any_of=IdList(ids)).order_by("pk").values_list(*_TASK_FIELDS)
        )
        named = {c[2] for c in candidates} | {e for t in tasks_rows for e in t[-2:]}
        if not named <= endpoints.keys():  # the first chunk, or a new endpoint
            endpoints = _endpoints()
        # Both candidates of a turn share their prompt's row: each is read once.
        prompt_ids = {c[-1] for c in candidates if c[-1] is not None}
        prompts = dict(
            SentPrompt.objects.filter(pk__any_of=IdList(prompt_ids))
            .annotate(messages_json=_as_text("messages"))
            .values_list("pk", "messages_json")
        )
        yield _ChunkRows(
            tasks=tasks_rows,
            turns=list(
                Turn.objects.filter(task_id__any_of=IdList(ids))
                .order_by("task_id", "number")
                .values_list(*_TURN_FIELDS)
            ),
            candidates=candidates,
            # Ordered by round, so the last one kept per turn is its latest judgement.
            judgements=list(
                Judgement.objects.filter(turn__task_id__any_of=IdList(ids))
                .order_by("turn_id", "round")
                .annotate(scores_json=_as_text("scores"), warnings_json=_as_text("warnings"))
                .values_list(*_JUDGEMENT_FIELDS)
            ),
            reviews=list(
                Review.objects.filter(task_id__any_of=IdList(ids))
                .order_by("task_id", "round")
                .values_list(*_REVIEW_FIELDS)
            ),
            endpoints=endpoints,
            prompts=prompts,
            line_comments=_line_comments(ids),
            evidence=_evidence(ids),
            quality=chunk_quality(ids),
        )


_LINE_COMMENT_FIELDS = (
    "candidate__turn__task_id", "candidate__turn__number", "candidate__slot",
    "path", "side", "line", "end_line", "text",
)  # fmt: skip


def _line_comments(task_ids: list[int]) -> dict[tuple[int, int, str], list[dict]]:
    """The contractor's line comments of a chunk's candidates (part of their judgement;
    reviewers' comments are review feedback and not exported)."""
    comments: dict[tuple[int, int, str], list[dict]] = {}
    rows = (
        LineComment.objects.filter(
            candidate__turn__task_id__any_of=IdList(task_ids), role=LineComment.Role.CONTRACTOR
        )
        .order_by("candidate_id", "path", "side", "line", "pk")
        .values_list(*_LINE_COMMENT_FIELDS)
    )
    for task_id, number, slot, path, side, line, end_line, text in rows:
        comments.setdefault((task_id, number, slot), []).append(
            {"path": path, "side": side, "line": line, "end_line": end_line, "text": text}
        )
    return comments


# In EvidenceRun's field order, as Model.from_db wants them (it ignores this tuple's order).
_RUN_FIELDS = ("id", "recipe", "recipe_digest", "status", "verdict", "is_clean", "error")


def _evidence(task_ids: list[int]) -> dict[tuple[int, int, str], dict]:
    """export_evidence of every candidate of a chunk's tasks that has an evidence run: one
    query, reading each run's stored verdict (never every test's outcome nor the logs)."""
    rows = (
        EvidenceRun.objects.filter(task_id__any_of=IdList(task_ids), candidate__isnull=False)
        .annotate(recipe_json=_as_text("recipe"), verdict_json=_as_text("verdict"))
        .values_list(
            "pk",
            "recipe_json",
            "recipe_digest",
            "status",
            "error",
            "verdict_json",
            "is_clean",
            "task_id",
            "candidate__turn__number",
            "candidate__slot",
        )  # fmt: skip
    )
    found: dict[tuple[int, int, str], dict] = {}
    for pk, recipe, digest, status, error, verdict, clean, task_id, number, slot in rows.iterator(
        chunk_size=500
    ):
        # from_db: a model built from its row, several times cheaper than EvidenceRun(...).
        run = EvidenceRun.from_db(
            None, _RUN_FIELDS,
            (pk, orjson.loads(recipe), digest, status,
             orjson.loads(verdict) if verdict is not None else None, clean, error),
        )  # fmt: skip
        found[task_id, number, slot] = export_evidence(run)
    return found


def _endpoints() -> dict[int, tuple[str, str, str]]:
    return {
        pk: (name, provider, model_id)
        for pk, name, provider, model_id in ModelEndpoint.objects.values_list(
            "pk", "name", "provider", "model_id"
        )
    }


def _chunk_records(
    rows: _ChunkRows, filters: ExportFilters
) -> tuple[list[dict], int, Counter[str]]:
    """(the native records of a chunk that the filters keep, the judged turns considered,
    how many of those the filters left out, by reason).

    Reads no database, so it can run on another thread than the one reading the rows."""
    turns_of: dict[int, list[tuple]] = {}
    for turn in rows.turns:
        turns_of.setdefault(turn[1], []).append(turn)
    candidates: dict[int, list[tuple]] = {}
    for candidate in sorted(rows.candidates, key=_turn_and_slot):
        candidates.setdefault(candidate[0], []).append(candidate)
    judgements: dict[int, list[tuple]] = {}  # every round, the latest last
    for judgement in rows.judgements:
        judgements.setdefault(judgement[0], []).append(judgement)
    reviews_of: dict[int, list[tuple]] = {}
    for review in rows.reviews:
        reviews_of.setdefault(review[0], []).append(review)
    records: list[dict] = []
    considered = 0
    left_out: Counter[str] = Counter()
    for task in rows.tasks:
        turns = turns_of.get(task[0], ())
        for record in _task_records(
            task, turns, candidates, judgements, reviews_of, rows.endpoints, rows.prompts
        ):
            considered += 1
            for slot, candidate in record["candidates"].items():
                key = (record["task_id"], record["turn"], slot)
                candidate["line_comments"] = rows.line_comments.get(key, [])
                candidate["evidence"] = rows.evidence.get(key)
            agrees = _evidence_agrees(record)
            # Whether the evidence (tests fixed minus broken) points the way of the
            # preference; None when either side has none or it cannot tell them apart.
            record["evidence_agrees"] = agrees
            record["quality"] = record_quality(
                rows.quality,
                task_id=record["task_id"],
                turn=record["turn"],
                round_judged=record["round_judged"],
            )
            if not filters.keeps(record["preference"]):
                left_out[WEAK] += 1
            elif not filters.keeps_evidence(agrees):
                left_out[_EVIDENCE_REASONS[agrees]] += 1
            else:
                records.append(record)
    return records, considered, left_out


def _evidence_agrees(record: dict) -> bool | None:
    slots = record["candidates"]
    if "A" not in slots or "B" not in slots:
        return None
    return evidence.evidence_agrees(
        record["preference"], slots["A"]["evidence"], slots["B"]["evidence"]
    )


def _turn_and_slot(candidate: tuple) -> tuple[int, str]:
    return candidate[0], candidate[1]


def _candidate_record(
    endpoint: str,
    provider: str,
    model_id: str,
    explanation: str,
    diff: str,
    applies_cleanly: bool | None,
    is_truncated: bool,
    attempts: int,
    started_at: Any,
    finished_at: Any,
    input_tokens: int | None,
    output_tokens: int | None,
    sent_prompt_id: int | None,
) -> dict:
    seconds = (finished_at - started_at).total_seconds() if started_at and finished_at else 0.0
    return {
        "endpoint": endpoint,
        "provider": provider,
        "model_id": model_id,
        "explanation": explanation,
        "diff": diff,
        "answer": prompting.assistant_text(explanation, diff),
        "applies_cleanly": applies_cleanly,
        "is_truncated": is_truncated,
        "attempts": attempts,
        "seconds": round(seconds, 3),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }


def _task_records(
    task: tuple,
    turns: Iterable[tuple],
    candidates: dict[int, list[tuple]],
    judgements: dict[int, list[tuple]],
    reviews_of: dict[int, list[tuple]],
    endpoints: dict[int, tuple[str, str, str]],
    prompts: dict[int, str],
) -> Iterator[dict]:
    (task_id, project, repository, clone_url, commit_sha, base_ref, title, kind,
     task_active_seconds, contractor_id, rounds, status, created_at, submitted_at,
     accepted_at, focus_files, first_endpoint, second_endpoint) = task  # fmt: skip
    pair = [endpoints[first_endpoint][0], endpoints[second_endpoint][0]]
    reviews = reviews_of.get(task_id, ())
    reviewer_ids = sorted({r[3] for r in reviews})
    review_list = [{"round": r[1], "decision": r[2], "reviewer_id": r[3]} for r in reviews]
    created, submitted, accepted = _iso(created_at), _iso(submitted_at), _iso(accepted_at)
    conversation: list[dict] = []
    for turn_id, _, number, prompt, turn_active_seconds, identical in turns:
        rounds_judged = judgements.get(turn_id)
        if not rounds_judged:
            continue
        history = [_judgement_record(j) for j in rounds_judged]
        latest = history[-1]
        scores, preference = latest["scores"], latest["preference"]
        # Built for judged turns only: the others are not exported.
        turn_candidates = candidates.get(turn_id, ())
        slots = {c[1]: _candidate_record(*endpoints[c[2]], *c[3:]) for c in turn_candidates}
        model_prompt, prompt_status = _model_prompt(turn_candidates, prompts)
        conversation.append({"role": "user", "content": prompt})
        yield {
            "schema_version": NATIVE_SCHEMA_VERSION,
            "task_id": task_id,
            "turn": number,
            "project": project,
            "repository": repository,
            "clone_url": clone_url,
            "commit_sha": commit_sha,
            "base_ref": base_ref,
            "task_title": title,
            "task_kind": kind,
            # The repository paths the contractor named as the ones that matter ([] if none).
            "focus_files": focus_files,
            "prompt": prompt,
            "conversation": list(conversation),
            # What both models were sent, system message first; None if not recorded (answers
            # from before Marlin kept it) or if the two were sent different prompts.
            "model_prompt": model_prompt,
            "model_prompt_status": prompt_status,
            "candidates": slots,
            # The two endpoints this task compares (every turn), by name.
            "pair": pair,
            # The two made the same change (None: the turn is older than this check).
            "identical_candidates": identical,
            "scores": scores,
            # Per rubric axis, the slot scored higher (None when equal): one axis alone
            # can serve as a preference signal.
            "criterion_preferences": _criterion_preferences(scores),
            "preference": preference,
            "preference_label": _PREFERENCE_LABELS[preference],
            "preferred_slot": "A" if preference < 0 else "B" if preference > 0 else None,
            "justification": latest["justification"],
            "consistency_warnings": latest["consistency_warnings"],
            "round_judged": latest["round"],
            # Every review round's judgement of this turn, oldest first (the last is the above).
            "judgement_history": history,
            "turn_active_seconds": turn_active_seconds,
            "task_active_seconds": task_active_seconds,
            "contractor_id": contractor_id,
            "reviewer_ids": reviewer_ids,
            "rounds": rounds,
            "reviews": review_list,
            "status": status,
            "created_at": created,
            "submitted_at": submitted,
            "accepted_at": accepted,
        }
        chosen = slots.get(prompting.continuing_slot(preference, scores))
        if chosen is not None:
            # The conversation continues from the chosen answer, as the models were told.
            conversation.append({"role": "assistant", "content": chosen["answer"]})


def _judgement_record(row: tuple) -> dict:
    _, round_judged, preference, scores_json, justification, warnings_json = row
    return {
        "round": round_judged,
        "preference": preference,
        "preference_label": _PREFERENCE_LABELS[preference],
        "scores": orjson.loads(scores_json),
        "justification": justification,
        "consistency_warnings": orjson.loads(warnings_json),
    }


def _model_prompt(candidates: Iterable[tuple], prompts: dict[int, str]) -> tuple[Any, str]:
    """(the messages both candidates were sent, "recorded") or (None, why not)."""
    ids = {c[-1] for c in candidates}
    if None in ids or not ids:
        return None, "not recorded"
    if len(ids) > 1:
        return None, "differs"
    return orjson.loads(prompts[ids.pop()]), "recorded"


def native_records(
    filters: ExportFilters | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 500,
) -> Iterator[dict]:
    """Yield the native record of every judged turn (its latest round's judgement).

    `progress`, if given, is called with the number of judged turns considered so far.
    """
    filters = filters or ExportFilters()
    considered = 0
    for rows in _chunks(filters, chunk_size):
        records, counted, _ = _chunk_records(rows, filters)
        yield from records
        considered += counted
        if progress is not None and considered:
            progress(considered)


def _criterion_preferences(scores: dict) -> dict[str, str | None]:
    a, b = scores.get("A", {}), scores.get("B", {})
    return {
        axis: ("A" if a[axis] > b[axis] else "B" if b[axis] > a[axis] else None)
        for axis in a
        if axis in b
    }


def pair_left_out(record: dict) -> str | None:
    """Why a record cannot be a preference pair (a tie, two identical candidates, two
    different prompts), or None when it can."""
    if record["preferred_slot"] is None:
        return TIE
    return _not_comparable(record)


def _not_comparable(record: dict) -> str | None:
    """Why the two candidates of a record make no pair on any measure, or None."""
    a, b = record["candidates"]["A"], record["candidates"]["B"]
    identical = record["identical_candidates"]
    if identical is None:  # a turn from before the check: compare the changes here
        identical = same_change(a["diff"], b["diff"])
    # A pair whose chosen and rejected are the same teaches a trainer nothing.
    if identical or a["answer"] == b["answer"]:
        return IDENTICAL
    if record["model_prompt_status"] == "differs":
        return PROMPTS_DIFFER
    return None


def _prompt_messages(record: dict, prompt_style: str) -> list[dict]:
    """The prompt of a pairwise record: what the models were sent, or the bare conversation
    (also for answers from before Marlin kept what was sent)."""
    if prompt_style == "model" and record["model_prompt"] is not None:
        return list(record["model_prompt"])
    return list(record["conversation"])


def _assistant(candidate: dict) -> list[dict]:
    return [{"role": "assistant", "content": candidate["answer"]}]


def _chosen_and_rejected(record: dict, chosen_slot: str) -> tuple[list[dict], list[dict]]:
    rejected_slot = "B" if chosen_slot == "A" else "A"
    candidates = record["candidates"]
    return _assistant(candidates[chosen_slot]), _assistant(candidates[rejected_slot])


def trl_record(record: dict, prompt_style: str = "model") -> dict | None:
    """A native record as a Hugging Face TRL conversational preference record
    (prompt/chosen/rejected); None when it is no pair (pair_left_out says why)."""
    return None if pair_left_out(record) else _trl(record, prompt_style)


def _trl(record: dict, prompt_style: str) -> dict:
    chosen, rejected = _chosen_and_rejected(record, record["preferred_slot"])
    return {
        "prompt": _prompt_messages(record, prompt_style),
        "chosen": chosen,
        "rejected": rejected,
    }


def openai_record(record: dict, prompt_style: str = "model") -> dict | None:
    """A native record as an OpenAI preference fine-tuning record (input / preferred /
    non-preferred); None when it is no pair (pair_left_out says why)."""
    return None if pair_left_out(record) else _openai(record, prompt_style)


def _openai(record: dict, prompt_style: str) -> dict:
    chosen, rejected = _chosen_and_rejected(record, record["preferred_slot"])
    return {
        "input": {"messages": _prompt_messages(record, prompt_style)},
        "preferred_output": chosen,
        "non_preferred_output": rejected,
    }


def criterion_left_out(record: dict, axis: str) -> str | None:
    """Why a record is no pair on one rubric axis, or None when it is one."""
    scores = record["scores"]
    if axis not in scores.get("A", {}) or axis not in scores.get("B", {}):
        return AXIS_EQUAL
    if scores["A"][axis] == scores["B"][axis]:
        return AXIS_EQUAL
    return _not_comparable(record)  # the overall preference may be a tie


def criterion_record(record: dict, axis: str, prompt_style: str = "model") -> dict | None:
    """A native record as a TRL record judged on one rubric axis alone: the candidate scored
    higher on it wins; None when both scored the same on that axis (or it has no such axis),
    or the pair is no pair at all (identical candidates, different prompts)."""
    return None if criterion_left_out(record, axis) else _criterion(record, axis, prompt_style)


def _criterion(record: dict, axis: str, prompt_style: str) -> dict:
    scores = record["scores"]
    winner = "A" if scores["A"][axis] > scores["B"][axis] else "B"
    chosen, rejected = _chosen_and_rejected(record, winner)
    return {
        "prompt": _prompt_messages(record, prompt_style),
        "chosen": chosen,
        "rejected": rejected,
        "criterion": axis,
    }


def _shape(fmt: str, prompt_style: str) -> Callable[[dict], tuple[dict | None, str | None]]:
    """The function turning a native record into (a record of a JSON Lines format, None) or
    (None, why it is left out)."""
    if fmt == "native":
        return lambda record: (record, None)
    if fmt in ("trl", "openai"):
        make = _trl if fmt == "trl" else _openai

        def pairwise(record: dict) -> tuple[dict | None, str | None]:
            reason = pair_left_out(record)  # once: it may compare the two diffs
            return (None, reason) if reason else (make(record, prompt_style), None)

        return pairwise
    axis = fmt.split(":", 1)[1]

    def on_axis(record: dict) -> tuple[dict | None, str | None]:
        reason = criterion_left_out(record, axis)
        return (None, reason) if reason else (_criterion(record, axis, prompt_style), None)

    return on_axis


CSV_COLUMNS = [
    "task_id", "turn", "project", "repository", "commit_sha", "task_kind", "preference",
    "preference_label", "preferred_slot", "endpoint_a", "endpoint_b", "score_total_a",
    "score_total_b", "applies_cleanly_a", "applies_cleanly_b", "justification", "contractor_id",
    "rounds", "status", "submitted_at", "accepted_at", "agreement_group", "gold", "flags",
]  # fmt: skip
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading quote.

    Numbers are not text: they are written as they are, so -2 stays a number for pandas and
    spreadsheets (a number cannot be a formula)."""
    if value is None:
        return ""
    if isinstance(value, numbers.Number):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_row(r: dict) -> list[object]:
    a, b = r["candidates"]["A"], r["candidates"]["B"]
    quality = r["quality"]
    row = [
        r["task_id"], r["turn"], r["project"], r["repository"], r["commit_sha"],
        r["task_kind"], r["preference"], r["preference_label"], r["preferred_slot"] or "",
        a["endpoint"], b["endpoint"], sum(r["scores"]["A"].values()),
        sum(r["scores"]["B"].values()), a["applies_cleanly"], b["applies_cleanly"],
        r["justification"], r["contractor_id"], r["rounds"], r["status"],
        r["submitted_at"], r["accepted_at"], quality["agreement_group"],
        quality["gold"]["expected"] if quality["gold"] else None, ";".join(quality["flags"]),
    ]  # fmt: skip
    return [csv_safe(cell) for cell in row]


def _csv_text(rows: Iterable[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


@dataclass(frozen=True)
class ExportBlock:
    """A run of an export's bytes: `records` records (a CSV header block holds none), made
    from `considered` judged turns (the measure of progress)."""

    data: bytes
    records: int
    considered: int
    # Judged turns considered but not made records, by reason (TIE, WEAK, IDENTICAL, ...).
    left_out: dict[str, int] = field(default_factory=dict)


def _encoder(fmt: str, filters: ExportFilters, prompt_style: str):
    """The function encoding one chunk of rows as a block of `fmt`."""
    if fmt == "csv":

        def encode(rows: _ChunkRows) -> ExportBlock:
            records, considered, left_out = _chunk_records(rows, filters)
            text = _csv_text(_csv_row(r) for r in records)
            return ExportBlock(text.encode("utf-8"), len(records), considered, dict(left_out))

        return encode
    shape = _shape(fmt, prompt_style)

    def encode(rows: _ChunkRows) -> ExportBlock:
        records, considered, left_out = _chunk_records(rows, filters)
        lines = []
        for shaped, reason in map(shape, records):
            if shaped is None:
                left_out[reason or TIE] += 1
            else:
                lines.append(orjson.dumps(shaped, option=orjson.OPT_APPEND_NEWLINE))
        return ExportBlock(b"".join(lines), len(lines), considered, dict(left_out))

    return encode


def export_blocks(
    *,
    fmt: str,
    filters: ExportFilters | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 500,
    prompt_style: str = "model",
) -> Iterator[ExportBlock]:
    """An export in one of EXPORT_FORMATS, or "criterion:<axis>", as UTF-8 blocks of whole
    records (for CSV a header block first). `progress`, if given, is called in this thread
    with the number of judged turns encoded so far.

    Rows are read in this thread while the previous chunk is encoded on another: reading
    waits on the database, encoding holds the GIL, and so they overlap.

    The same filters on the same data give the same bytes: records come in task and turn
    order and carry no time of export.
    """
    check_format(fmt)
    if prompt_style not in PROMPT_STYLES:
        raise ApplicationError(
            f"Unknown prompt style {prompt_style!r}: use {' or '.join(PROMPT_STYLES)}."
        )
    filters = filters or ExportFilters()
    if fmt == "csv":
        yield ExportBlock(_csv_text([CSV_COLUMNS]).encode("utf-8"), 0, 0)
    encode = _encoder(fmt, filters, prompt_style)
    considered = 0
    for block in map_ahead(encode, _chunks(filters, chunk_size)):
        yield block
        considered += block.considered
        if progress is not None and considered:
            progress(considered)


def export_lines(**kwargs: Any) -> Iterator[str]:
    """export_blocks as text (for tests and streaming)."""
    return (block.data.decode("utf-8") for block in export_blocks(**kwargs))
