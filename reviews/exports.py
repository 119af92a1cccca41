"""Preference dataset exports: one record per judged turn, streamed so memory stays flat."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from django.db.models import Exists, OuterRef

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
_CANDIDATE_FIELDS = (
    "turn_id", "slot", "endpoint_id", "explanation", "diff", "applies_cleanly", "is_truncated",
    "attempts", "started_at", "finished_at", "input_tokens", "output_tokens",
)  # fmt: skip


def native_records(
    filters: ExportFilters | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 500,
) -> Iterator[dict]:
    """Yield the native record of every judged turn (its latest round's judgement).

    Tasks are read `chunk_size` at a time (keyset on the id, so no cursor stays open), each
    table with one query per chunk returning plain rows: building model objects for every
    row cost several times the query itself. Memory stays flat whatever the size.
    `progress`, if given, is called with the number of judged turns considered so far.
    """
    filters = filters or ExportFilters()
    endpoints = {
        e["pk"]: e for e in ModelEndpoint.objects.values("pk", "name", "provider", "model_id")
    }
    tasks = filters.tasks()
    considered, last = 0, 0
    while True:
        ids = list(tasks.filter(pk__gt=last).values_list("pk", flat=True)[:chunk_size])
        if not ids:
            break
        last = ids[-1]
        for record in _chunk_records(ids, endpoints):
            considered += 1
            if filters.keeps(record["preference"]):
                yield record
        if progress is not None and considered:
            progress(considered)


def _chunk_records(ids: list[int], endpoints: dict[int, dict]) -> Iterator[dict]:
    turns_of: dict[int, list[dict]] = {}
    for turn in (
        Turn.objects.filter(task_id__in=ids)
        .order_by("task_id", "number")
        .values("pk", "task_id", "number", "prompt", "active_seconds")
    ):
        turns_of.setdefault(turn["task_id"], []).append(turn)
    turn_ids = [t["pk"] for turns in turns_of.values() for t in turns]
    candidates: dict[int, dict[str, dict]] = {}
    for c in Candidate.objects.filter(turn_id__in=turn_ids).order_by().values(*_CANDIDATE_FIELDS):
        candidates.setdefault(c["turn_id"], {})[c["slot"]] = c
    # Ordered by round, so the last one kept per turn is its latest judgement.
    judgements: dict[int, dict] = {}
    for j in (
        Judgement.objects.filter(turn_id__in=turn_ids)
        .order_by("turn_id", "round")
        .values("turn_id", "round", "preference", "scores", "justification", "warnings")
    ):
        judgements[j["turn_id"]] = j
    reviews_of: dict[int, list[dict]] = {}
    for r in (
        Review.objects.filter(task_id__in=ids)
        .order_by("task_id", "round")
        .values("task_id", "round", "decision", "reviewer_id")
    ):
        reviews_of.setdefault(r["task_id"], []).append(r)
    for task in Task.objects.filter(pk__in=ids).order_by("pk").values(*_TASK_FIELDS):
        yield from _task_records(
            task,
            turns_of.get(task["pk"], []),
            candidates,
            judgements,
            reviews_of.get(task["pk"], []),
            endpoints,
        )


def _candidate_record(c: dict, endpoint: dict) -> dict:
    seconds = (
        (c["finished_at"] - c["started_at"]).total_seconds()
        if c["started_at"] and c["finished_at"]
        else 0.0
    )
    return {
        "endpoint": endpoint["name"],
        "provider": endpoint["provider"],
        "model_id": endpoint["model_id"],
        "explanation": c["explanation"],
        "diff": c["diff"],
        "answer": prompting.assistant_text(c["explanation"], c["diff"]),
        "applies_cleanly": c["applies_cleanly"],
        "is_truncated": c["is_truncated"],
        "attempts": c["attempts"],
        "seconds": round(seconds, 3),
        "input_tokens": c["input_tokens"],
        "output_tokens": c["output_tokens"],
    }


def _task_records(
    task: dict,
    turns: list[dict],
    candidates: dict[int, dict[str, dict]],
    judgements: dict[int, dict],
    reviews: list[dict],
    endpoints: dict[int, dict],
) -> Iterator[dict]:
    conversation: list[dict] = []
    reviewer_ids = sorted({r["reviewer_id"] for r in reviews})
    review_list = [
        {"round": r["round"], "decision": r["decision"], "reviewer_id": r["reviewer_id"]}
        for r in reviews
    ]
    for turn in turns:
        judgement = judgements.get(turn["pk"])
        if judgement is None:
            continue
        slots = {
            slot: _candidate_record(c, endpoints[c["endpoint_id"]])
            for slot, c in sorted(candidates.get(turn["pk"], {}).items())
        }
        conversation.append({"role": "user", "content": turn["prompt"]})
        preference = judgement["preference"]
        yield {
            "schema_version": NATIVE_SCHEMA_VERSION,
            "task_id": task["pk"],
            "turn": turn["number"],
            "project": task["project__name"],
            "repository": task["repository__full_name"],
            "clone_url": task["repository__clone_url"],
            "commit_sha": task["commit_sha"],
            "base_ref": task["base_ref"],
            "task_title": task["title"],
            "task_kind": task["kind"],
            "prompt": turn["prompt"],
            "conversation": list(conversation),
            "candidates": slots,
            "scores": judgement["scores"],
            # Per rubric axis, the slot scored higher (None when equal): one axis alone
            # can serve as a preference signal.
            "criterion_preferences": _criterion_preferences(judgement["scores"]),
            "preference": preference,
            "preference_label": Preference(preference).label,
            "preferred_slot": "A" if preference < 0 else "B" if preference > 0 else None,
            "justification": judgement["justification"],
            "consistency_warnings": judgement["warnings"],
            "round_judged": judgement["round"],
            "turn_active_seconds": turn["active_seconds"],
            "task_active_seconds": task["active_seconds"],
            "contractor_id": task["contractor_id"],
            "reviewer_ids": reviewer_ids,
            "rounds": task["round"],
            "reviews": review_list,
            "status": task["status"],
            "created_at": _iso(task["created_at"]),
            "submitted_at": _iso(task["submitted_at"]),
            "accepted_at": _iso(task["accepted_at"]),
        }
        chosen = slots.get(prompting.continuing_slot(preference, judgement["scores"]))
        if chosen is not None:
            # The conversation continues from the chosen answer, as the models were told.
            conversation.append({"role": "assistant", "content": chosen["answer"]})


def _criterion_preferences(scores: dict) -> dict[str, str | None]:
    a, b = scores.get("A", {}), scores.get("B", {})
    return {
        axis: ("A" if a[axis] > b[axis] else "B" if b[axis] > a[axis] else None)
        for axis in a
        if axis in b
    }


def _jsonl(record: dict) -> bytes:
    """One JSON line, UTF-8. orjson: JSON encoding was half the export's time with json."""
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def _pair(record: dict) -> tuple[dict, dict] | None:
    """The (chosen, rejected) candidates of a record, or None for a tie."""
    slot = record["preferred_slot"]
    if slot is None:
        return None
    other = "B" if slot == "A" else "A"
    return record["candidates"][slot], record["candidates"][other]


def _prompt(record: dict) -> list[dict]:
    return list(record["conversation"])


def trl_records(**source: Any) -> Iterator[dict]:
    """Hugging Face TRL conversational preference records (prompt/chosen/rejected); no ties."""
    for record in native_records(**source):
        pair = _pair(record)
        if pair is None:
            continue
        chosen, rejected = pair
        yield {
            "prompt": _prompt(record),
            "chosen": [{"role": "assistant", "content": chosen["answer"]}],
            "rejected": [{"role": "assistant", "content": rejected["answer"]}],
        }


def openai_records(**source: Any) -> Iterator[dict]:
    """OpenAI preference fine-tuning records (input / preferred / non-preferred); no ties."""
    for record in native_records(**source):
        pair = _pair(record)
        if pair is None:
            continue
        chosen, rejected = pair
        yield {
            "input": {"messages": _prompt(record)},
            "preferred_output": [{"role": "assistant", "content": chosen["answer"]}],
            "non_preferred_output": [{"role": "assistant", "content": rejected["answer"]}],
        }


def criterion_records(*, axis: str, **source: Any) -> Iterator[dict]:
    """TRL records judged on one rubric axis alone: the candidate scored higher on it wins;
    turns where both scored the same on that axis are left out."""
    for record in native_records(**source):
        scores = record["scores"]
        if axis not in scores.get("A", {}):
            continue
        a, b = scores["A"][axis], scores["B"][axis]
        if a == b:
            continue
        chosen, rejected = ("A", "B") if a > b else ("B", "A")
        candidates = record["candidates"]
        yield {
            "prompt": _prompt(record),
            "chosen": [{"role": "assistant", "content": candidates[chosen]["answer"]}],
            "rejected": [{"role": "assistant", "content": candidates[rejected]["answer"]}],
            "criterion": axis,
        }


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


def csv_lines(**source: Any) -> Iterator[str]:
    """A CSV summary, one row per judged turn, safe against formula injection."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for r in native_records(**source):
        a, b = r["candidates"]["A"], r["candidates"]["B"]
        row = [
            r["task_id"], r["turn"], r["project"], r["repository"], r["commit_sha"],
            r["task_kind"], r["preference"], r["preference_label"], r["preferred_slot"] or "",
            a["endpoint"], b["endpoint"], sum(r["scores"]["A"].values()),
            sum(r["scores"]["B"].values()), a["applies_cleanly"], b["applies_cleanly"],
            r["justification"], r["contractor_id"], r["rounds"], r["status"],
            r["submitted_at"], r["accepted_at"],
        ]  # fmt: skip
        writer.writerow([csv_safe(cell) for cell in row])
        yield flush()


def export_bytes(
    *,
    fmt: str,
    filters: ExportFilters | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """An export in one of EXPORT_FORMATS, or "criterion:<axis>", one chunk per record
    (UTF-8; for CSV a header chunk first).

    The same filters on the same data give the same bytes: records come in task and turn
    order and carry no time of export.
    """
    check_format(fmt)
    source = {"filters": filters, "progress": progress}
    if fmt == "csv":
        return (line.encode("utf-8") for line in csv_lines(**source))
    if fmt == "native":
        records: Iterator[dict] = native_records(**source)
    elif fmt == "trl":
        records = trl_records(**source)
    elif fmt == "openai":
        records = openai_records(**source)
    else:
        records = criterion_records(axis=fmt.split(":", 1)[1], **source)
    return (_jsonl(r) for r in records)


def export_lines(**kwargs: Any) -> Iterator[str]:
    """export_bytes as text (for streaming responses and tests)."""
    return (chunk.decode("utf-8") for chunk in export_bytes(**kwargs))
