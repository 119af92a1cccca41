"""Preference dataset exports: one record per judged turn, streamed so memory stays flat."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.db.models import Prefetch

from reviews.models import Review
from tasks.models import Candidate, Judgement, Preference, Project, Task, Turn

NATIVE_SCHEMA_VERSION = 1


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def native_records(*, project: Project | None = None, accepted_only: bool = True) -> Iterator[dict]:
    """Yield the native record of every judged turn (its latest round's judgement)."""
    tasks = Task.objects.select_related("project", "repository", "contractor").order_by("pk")
    if project is not None:
        tasks = tasks.filter(project=project)
    if accepted_only:
        tasks = tasks.filter(status=Task.Status.ACCEPTED)
    tasks = tasks.prefetch_related(
        Prefetch(
            "turns",
            queryset=Turn.objects.order_by("number").prefetch_related(
                Prefetch("candidates", queryset=Candidate.objects.select_related("endpoint")),
                Prefetch("judgements", queryset=Judgement.objects.order_by("round")),
            ),
        ),
        Prefetch("reviews", queryset=Review.objects.order_by("round")),
    )
    for task in tasks.iterator(chunk_size=500):
        yield from _task_records(task)


def _task_records(task: Task) -> Iterator[dict]:
    reviews = list(task.reviews.all())
    conversation: list[dict] = []
    for turn in task.turns.all():
        judgements = list(turn.judgements.all())
        if not judgements:
            continue
        judgement = judgements[-1]
        candidates = {c.slot: c for c in turn.candidates.all()}
        conversation.append({"role": "user", "content": turn.prompt})
        yield {
            "schema_version": NATIVE_SCHEMA_VERSION,
            "task_id": task.pk,
            "turn": turn.number,
            "project": task.project.name,
            "repository": task.repository.full_name,
            "clone_url": task.repository.clone_url,
            "commit_sha": task.commit_sha,
            "base_ref": task.base_ref,
            "task_title": task.title,
            "task_kind": task.kind,
            "prompt": turn.prompt,
            "conversation": list(conversation),
            "candidates": {
                slot: {
                    "endpoint": c.endpoint.name,
                    "provider": c.endpoint.provider,
                    "model_id": c.endpoint.model_id,
                    "explanation": c.explanation,
                    "diff": c.diff,
                }
                for slot, c in sorted(candidates.items())
            },
            "scores": judgement.scores,
            "preference": judgement.preference,
            "preference_label": Preference(judgement.preference).label,
            "preferred_slot": judgement.preferred_slot,
            "justification": judgement.justification,
            "contractor_id": task.contractor_id,
            "reviewer_ids": sorted({r.reviewer_id for r in reviews}),
            "rounds": task.round,
            "reviews": [
                {"round": r.round, "decision": r.decision, "reviewer_id": r.reviewer_id}
                for r in reviews
            ],
            "status": task.status,
            "created_at": _iso(task.created_at),
            "submitted_at": _iso(task.submitted_at),
            "accepted_at": _iso(task.accepted_at),
        }
        preferred = candidates.get(judgement.preferred_slot or "A")
        if preferred is not None:
            conversation.append({"role": "assistant", "content": preferred.explanation})


def native_jsonl_lines(**filters: Any) -> Iterator[str]:
    for record in native_records(**filters):
        yield json.dumps(record, ensure_ascii=False) + "\n"
