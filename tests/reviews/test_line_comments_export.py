"""The contractor's line comments travel with their judgement into the native export."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from reviews.claim_services import review_claim
from reviews.comment_services import comment_path, line_comment_add
from reviews.export_filters import ExportFilters
from reviews.exports import native_records, trl_record
from reviews.services import review_decide
from tasks.diffview import candidate_diff_view
from tests.tasks.helpers import create_task, decide, generate_all, submit


def first_line(cand) -> tuple[str, int]:
    file = candidate_diff_view(cand).files[0]
    return comment_path(file), next(d.new_no for h in file.hunks for d in h.lines if d.new_no)


def judged_with_comments(contractor, project, repository, reviewer, *, text: str):
    task = generate_all(create_task(contractor=contractor, project=project, repository=repository))
    a = task.turns.get().candidates.get(slot="A")
    path, line = first_line(a)
    line_comment_add(candidate=a, by=contractor, path=path, side="new", line=line, text=text)
    submit(task)
    review_claim(task=task, reviewer=reviewer)
    # A reviewer's comment is review feedback: it must stay out of the dataset.
    line_comment_add(candidate=a, by=reviewer, path=path, side="new", line=line, text="Rev.")
    review_decide(task=task, reviewer=reviewer, decision="ACCEPT", feedback="")
    return task, path, line


def test_native_records_carry_the_contractors_comments(
    ready_repository, project, contractor, reviewer
):
    task, path, line = judged_with_comments(
        contractor, project, ready_repository, reviewer, text="A keeps the old\nbehaviour."
    )
    (record,) = native_records(ExportFilters())
    assert record["task_id"] == task.pk
    assert record["candidates"]["A"]["line_comments"] == [
        {"path": path, "side": "new", "line": line, "end_line": None,
         "text": "A keeps the old\nbehaviour."}
    ]  # fmt: skip
    assert record["candidates"]["B"]["line_comments"] == []


def test_pairwise_formats_are_unchanged(ready_repository, project, contractor, reviewer):
    judged_with_comments(contractor, project, ready_repository, reviewer, text="Note.")
    (record,) = native_records(ExportFilters())
    assert "line_comments" not in str(trl_record(record))


def test_comments_cost_one_query_per_chunk_whatever_the_number_of_tasks(
    ready_repository, project, contractor, reviewer
):
    for n in range(3):
        judged_with_comments(contractor, project, ready_repository, reviewer, text=f"T{n}")
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    decide(submit(task), reviewer=reviewer)
    with CaptureQueriesContext(connection) as queries:
        records = list(native_records(ExportFilters(), chunk_size=500))
    assert len(records) == 4
    assert sorted(c["text"] for r in records for c in r["candidates"]["A"]["line_comments"]) == [
        "T0", "T1", "T2",
    ]  # fmt: skip
    reads = [q for q in queries.captured_queries if "reviews_linecomment" in q["sql"]]
    assert len(reads) == 1
