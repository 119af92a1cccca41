"""Preference dataset exports: one record per judged turn, streamed so memory stays flat."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from django.db.models import Exists, ExpressionWrapper, F, OuterRef, TextField

from marlin.threads import map_ahead
from reviews.export_filters import ExportFilters, check_format
from reviews.models import Review
from tasks import prompting
from tasks.models import Candidate, Judgement, ModelEndpoint, Preference, Task, Turn

NATIVE_SCHEMA_VERSION = 1


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def judged_turn_count(filters: ExportFilters) -> int:
    """How many judged turns the filters select: the total an export job counts towards."""
    judged = Judgement.objects.filter(turn=OuterRef("pk"))
    return Turn.objects.filter(Exists(judged), task__in=filters.tasks()).count()


_TASK_FIELDS = (
    "pk", "project__name", "repository__full_name", "repository__clone_url", "commit_sha",
    "base_ref", "title", "kind", "active_seconds", "contractor_id", "round", "status",
    "created_at", "submitted_at", "accepted_at",
)  # fmt: skip
_TURN_FIELDS = ("pk", "task_id", "number", "prompt", "active_seconds")
_CANDIDATE_FIELDS = (
    "turn_id", "slot", "endpoint_id", "explanation", "diff", "applies_cleanly", "is_truncated",
    "attempts", "started_at", "finished_at", "input_tokens", "output_tokens",
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
            Candidate.objects.filter(turn__task_id__in=ids)
            .order_by()
            .values_list(*_CANDIDATE_FIELDS)
        )
        if any(c[2] not in endpoints for c in candidates):  # the first chunk, or a new endpoint
            endpoints = _endpoints()
        yield _ChunkRows(
            tasks=list(Task.objects.filter(pk__in=ids).order_by("pk").values_list(*_TASK_FIELDS)),
            turns=list(
                Turn.objects.filter(task_id__in=ids)
                .order_by("task_id", "number")
                .values_list(*_TURN_FIELDS)
            ),
            candidates=candidates,
            # Ordered by round, so the last one kept per turn is its latest judgement.
            judgements=list(
                Judgement.objects.filter(turn__task_id__in=ids)
                .order_by("turn_id", "round")
                .annotate(scores_json=_as_text("scores"), warnings_json=_as_text("warnings"))
                .values_list(*_JUDGEMENT_FIELDS)
            ),
            reviews=list(
                Review.objects.filter(task_id__in=ids)
                .order_by("task_id", "round")
                .values_list(*_REVIEW_FIELDS)
            ),
            endpoints=endpoints,
        )


def _endpoints() -> dict[int, tuple[str, str, str]]:
    return {
        pk: (name, provider, model_id)
        for pk, name, provider, model_id in ModelEndpoint.objects.values_list(
            "pk", "name", "provider", "model_id"
        )
    }


def _chunk_records(rows: _ChunkRows, keeps: Callable[[int], bool]) -> tuple[list[dict], int]:
    """(the native records of a chunk that `keeps` keeps, the judged turns considered).

    Reads no database, so it can run on another thread than the one reading the rows."""
    turns_of: dict[int, list[tuple]] = {}
    for turn in rows.turns:
        turns_of.setdefault(turn[1], []).append(turn)
    candidates: dict[int, list[tuple]] = {}
    for candidate in sorted(rows.candidates, key=_turn_and_slot):
        candidates.setdefault(candidate[0], []).append(candidate)
    judgements = {j[0]: j for j in rows.judgements}  # the latest round wins
    reviews_of: dict[int, list[tuple]] = {}
    for review in rows.reviews:
        reviews_of.setdefault(review[0], []).append(review)
    records: list[dict] = []
    considered = 0
    for task in rows.tasks:
        turns = turns_of.get(task[0], ())
        for record in _task_records(
            task, turns, candidates, judgements, reviews_of, rows.endpoints
        ):
            considered += 1
            if keeps(record["preference"]):
                records.append(record)
    return records, considered


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
    judgements: dict[int, tuple],
    reviews_of: dict[int, list[tuple]],
    endpoints: dict[int, tuple[str, str, str]],
) -> Iterator[dict]:
    (task_id, project, repository, clone_url, commit_sha, base_ref, title, kind,
     task_active_seconds, contractor_id, rounds, status, created_at, submitted_at,
     accepted_at) = task  # fmt: skip
    reviews = reviews_of.get(task_id, ())
    reviewer_ids = sorted({r[3] for r in reviews})
    review_list = [{"round": r[1], "decision": r[2], "reviewer_id": r[3]} for r in reviews]
    created, submitted, accepted = _iso(created_at), _iso(submitted_at), _iso(accepted_at)
    conversation: list[dict] = []
    for turn_id, _, number, prompt, turn_active_seconds in turns:
        judgement = judgements.get(turn_id)
        if judgement is None:
            continue
        _, round_judged, preference, scores_json, justification, warnings_json = judgement
        scores = orjson.loads(scores_json)
        # Built for judged turns only: the others are not exported.
        slots = {
            c[1]: _candidate_record(*endpoints[c[2]], *c[3:]) for c in candidates.get(turn_id, ())
        }
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
            "prompt": prompt,
            "conversation": list(conversation),
            "candidates": slots,
            "scores": scores,
            # Per rubric axis, the slot scored higher (None when equal): one axis alone
            # can serve as a preference signal.
            "criterion_preferences": _criterion_preferences(scores),
            "preference": preference,
            "preference_label": _PREFERENCE_LABELS[preference],
            "preferred_slot": "A" if preference < 0 else "B" if preference > 0 else None,
            "justification": justification,
            "consistency_warnings": orjson.loads(warnings_json),
            "round_judged": round_judged,
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
        records, counted = _chunk_records(rows, filters.keeps)
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


def _pair(record: dict) -> tuple[dict, dict] | None:
    """The (chosen, rejected) candidates of a record, or None for a tie."""
    slot = record["preferred_slot"]
    if slot is None:
        return None
    other = "B" if slot == "A" else "A"
    return record["candidates"][slot], record["candidates"][other]


def _assistant(candidate: dict) -> list[dict]:
    return [{"role": "assistant", "content": candidate["answer"]}]


def trl_record(record: dict) -> dict | None:
    """A native record as a Hugging Face TRL conversational preference record
    (prompt/chosen/rejected); None for a tie."""
    pair = _pair(record)
    if pair is None:
        return None
    chosen, rejected = pair
    return {
        "prompt": list(record["conversation"]),
        "chosen": _assistant(chosen),
        "rejected": _assistant(rejected),
    }


def openai_record(record: dict) -> dict | None:
    """A native record as an OpenAI preference fine-tuning record (input / preferred /
    non-preferred); None for a tie."""
    pair = _pair(record)
    if pair is None:
        return None
    chosen, rejected = pair
    return {
        "input": {"messages": list(record["conversation"])},
        "preferred_output": _assistant(chosen),
        "non_preferred_output": _assistant(rejected),
    }


def criterion_record(record: dict, axis: str) -> dict | None:
    """A native record as a TRL record judged on one rubric axis alone: the candidate scored
    higher on it wins; None when both scored the same on that axis (or it has no such axis)."""
    scores = record["scores"]
    if axis not in scores.get("A", {}) or axis not in scores.get("B", {}):
        return None
    a, b = scores["A"][axis], scores["B"][axis]
    if a == b:
        return None
    chosen, rejected = ("A", "B") if a > b else ("B", "A")
    candidates = record["candidates"]
    return {
        "prompt": list(record["conversation"]),
        "chosen": _assistant(candidates[chosen]),
        "rejected": _assistant(candidates[rejected]),
        "criterion": axis,
    }


def _shape(fmt: str) -> Callable[[dict], dict | None]:
    """The function turning a native record into a record of a JSON Lines format."""
    if fmt == "native":
        return lambda record: record
    if fmt == "trl":
        return trl_record
    if fmt == "openai":
        return openai_record
    axis = fmt.split(":", 1)[1]
    return lambda record: criterion_record(record, axis)


CSV_COLUMNS = [
    "task_id", "turn", "project", "repository", "commit_sha", "task_kind", "preference",
    "preference_label", "preferred_slot", "endpoint_a", "endpoint_b", "score_total_a",
    "score_total_b", "applies_cleanly_a", "applies_cleanly_b", "justification", "contractor_id",
    "rounds", "status", "submitted_at", "accepted_at",
]  # fmt: skip
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_row(r: dict) -> list[str]:
    a, b = r["candidates"]["A"], r["candidates"]["B"]
    row = [
        r["task_id"], r["turn"], r["project"], r["repository"], r["commit_sha"],
        r["task_kind"], r["preference"], r["preference_label"], r["preferred_slot"] or "",
        a["endpoint"], b["endpoint"], sum(r["scores"]["A"].values()),
        sum(r["scores"]["B"].values()), a["applies_cleanly"], b["applies_cleanly"],
        r["justification"], r["contractor_id"], r["rounds"], r["status"],
        r["submitted_at"], r["accepted_at"],
    ]  # fmt: skip
    return [csv_safe(cell) for cell in row]


def _csv_text(rows: Iterable[list[str]]) -> str:
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


def _encoder(fmt: str, keeps: Callable[[int], bool]):
    """The function encoding one chunk of rows as a block of `fmt`."""
    if fmt == "csv":

        def encode(rows: _ChunkRows) -> ExportBlock:
            records, considered = _chunk_records(rows, keeps)
            text = _csv_text(_csv_row(r) for r in records)
            return ExportBlock(text.encode("utf-8"), len(records), considered)

        return encode
    shape = _shape(fmt)

    def encode(rows: _ChunkRows) -> ExportBlock:
        records, considered = _chunk_records(rows, keeps)
        lines = [
            orjson.dumps(shaped, option=orjson.OPT_APPEND_NEWLINE)
            for shaped in map(shape, records)
            if shaped is not None
        ]
        return ExportBlock(b"".join(lines), len(lines), considered)

    return encode


def export_blocks(
    *,
    fmt: str,
    filters: ExportFilters | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 500,
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
    filters = filters or ExportFilters()
    if fmt == "csv":
        yield ExportBlock(_csv_text([CSV_COLUMNS]).encode("utf-8"), 0, 0)
    encode = _encoder(fmt, filters.keeps)
    considered = 0
    for block in map_ahead(encode, _chunks(filters, chunk_size)):
        yield block
        considered += block.considered
        if progress is not None and considered:
            progress(considered)


def export_lines(**kwargs: Any) -> Iterator[str]:
    """export_blocks as text (for tests and streaming)."""
    return (block.data.decode("utf-8") for block in export_blocks(**kwargs))
