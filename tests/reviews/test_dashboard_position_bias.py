"""Position bias pinned to literal counts: slot A and slot B wins differ overall and per
contractor, so swapping them (or dropping ties into either) changes every figure."""

from __future__ import annotations

import pytest

from reviews import dashboard
from tasks import services
from tests.tasks.helpers import create_task, decide, generate_all, valid_scores


def _accepted_with_preference(*, preference, project, repository, contractor, reviewer):
    task = generate_all(create_task(contractor=contractor, project=project, repository=repository))
    a, b = (5, 2) if preference < 0 else (2, 5) if preference > 0 else (3, 3)
    services.task_submit(
        task=task,
        by=contractor,
        preference=preference,
        scores=valid_scores(project, a=a, b=b),
        justification="Judged for the position bias test.",
        # A slight preference with far-apart scores is a warning, not the subject here.
        confirm_warnings=True,
    )
    decide(task, reviewer=reviewer)


@pytest.fixture
def biased_set(ready_repository, project, contractor, other_contractor, reviewer):
    # carol: A wins 3 times (of different strengths), B once, one tie; dave: B once.
    plan = [(contractor, p) for p in (-2, -1, -3, 2, 0)] + [(other_contractor, 1)]
    for person, preference in plan:
        _accepted_with_preference(
            preference=preference, project=project, repository=ready_repository,
            contractor=person, reviewer=reviewer,
        )  # fmt: skip


def test_position_bias_counts_slot_a_and_slot_b_wins_apart(biased_set):
    board = dashboard.dashboard(samples=10)
    bias = board.position_bias
    assert (bias.a_wins, bias.b_wins, bias.ties) == (3, 2, 1)
    assert bias.a_share == pytest.approx(3 / 5)
    per_person = {
        name: (b.a_wins, b.b_wins, b.ties) for name, b in board.position_bias_by_contractor.items()
    }
    assert per_person == {"carol": (3, 1, 1), "dave": (0, 1, 0)}
    assert dashboard.chart_data(board)["position_bias"] == {
        "overall": pytest.approx(0.6),
        "by_contractor": {"carol": pytest.approx(0.75), "dave": 0.0},
    }
