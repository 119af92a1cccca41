"""The CSV summary reads back with numeric columns as numbers, and only text is neutralised."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from reviews import exports
from reviews.export_filters import ExportFilters
from tasks import services
from tests.tasks.helpers import create_task, decide, generate_all, valid_scores


@pytest.fixture
def accepted(ready_repository, project, contractor, reviewer):
    made = []
    for preference, (a, b), justification in (
        (-2, (4, 2), "=SUM(A1) -- A keeps the zero case; B crashes."),
        (3, (1, 5), "-B is the only one that runs at all."),
    ):
        task = generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
        services.task_submit(
            task=task, by=contractor, preference=preference,
            scores=valid_scores(project, a, b), justification=justification,
        )  # fmt: skip
        decide(task, reviewer=reviewer)
        made.append(task)
    return made


def _frame() -> pd.DataFrame:
    data = b"".join(b.data for b in exports.export_blocks(fmt="csv", filters=ExportFilters()))
    return pd.read_csv(io.BytesIO(data))


def test_numbers_stay_numbers_for_pandas(accepted):
    frame = _frame()
    assert list(frame.columns) == exports.CSV_COLUMNS
    for column in ("task_id", "turn", "preference", "score_total_a", "score_total_b", "rounds"):
        assert pd.api.types.is_integer_dtype(frame[column]), (column, frame[column].dtype)
    assert frame["preference"].tolist() == [-2, 3]
    assert frame["score_total_a"].tolist() == [16, 4]
    assert frame["applies_cleanly_a"].dtype == bool


def test_text_cells_that_look_like_formulas_are_still_neutralised(accepted):
    frame = _frame()
    assert frame["justification"].tolist() == [
        "'=SUM(A1) -- A keeps the zero case; B crashes.",
        "'-B is the only one that runs at all.",
    ]


@pytest.mark.parametrize(
    ("value", "cell"),
    [(-2, -2), (0, 0), (1.5, 1.5), (True, True), (None, ""), ("-2", "'-2"), ("@x", "'@x")],
)
def test_csv_safe_quotes_text_only(value, cell):
    assert exports.csv_safe(value) == cell
