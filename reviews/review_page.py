"""What the reviewer's read-only workspace shows, gathered in one place for the views."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reviews import quality_flags, selectors
from reviews.comment_selectors import line_comments_page_context
from reviews.round_changes import round_changes
from tasks.diff_html import Layout, attach_diff_pages
from tasks.models import Task
from tasks.selectors import attach_evidence_views

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _judgement_rows(task: Task, judgement, changes) -> list[dict]:
    """One row per rubric axis: both candidates' scores and, if changed, the earlier ones."""
    if judgement is None:
        return []
    rows = []
    for axis in task.project.rubric_axes:
        cells = []
        for slot in ("A", "B"):
            key = f"{slot}:{axis['key']}"
            cells.append(
                {
                    "slot": slot,
                    "score": judgement.scores.get(slot, {}).get(axis["key"]),
                    "changed": changes is not None and key in changes.scores_was,
                    "was": changes.scores_was.get(key) if changes is not None else None,
                }
            )
        rows.append({"axis": axis, "cells": cells})
    return rows


def review_page_context(*, task: Task, viewer: User, layout: Layout = "unified") -> dict:
    """The whole task as its contractor submitted it in the current round, plus the review
    state: the claim, what changed since the last round, earlier decisions and the timeline.
    """
    turns = list(task.turns.all())
    attach_diff_pages((c for t in turns for c in t.candidates.all()), layout=layout)
    attach_evidence_views(task=task, viewer=viewer)
    changes = round_changes(task)
    items = []
    for turn in turns:
        judgement = next((j for j in turn.judgements.all() if j.round == task.round), None)
        change = changes.get(turn.pk)
        items.append(
            {
                "turn": turn,
                "candidates": list(turn.candidates.all()),
                "judgement": judgement,
                "rubric_rows": _judgement_rows(task, judgement, change),
                "changes": change,
            }
        )
    claim = selectors.review_claim_open(task=task)
    reviews = list(task.reviews.select_related("reviewer").prefetch_related("notes__turn"))
    submission = next((s for s in task.submissions.all() if s.round == task.round), None)
    return {
        "task": task,
        "diff_layout": layout,
        "flags": quality_flags.task_round_flags(task=task),
        "turns": items,
        "has_changes": any(c.any for c in changes.values()),
        "claim": claim,
        "claimed_by_me": claim is not None and claim.reviewer_id == viewer.pk,
        "reviews": reviews,
        "submission": submission,
        "timeline": selectors.task_timeline(task=task, viewer=viewer),
        **line_comments_page_context(
            task=task, viewer=viewer, candidates=(c for t in turns for c in t.candidates.all())
        ),
    }
