"""An admin marks an accepted turn gold in the Django admin; the service's rules hold there."""

from __future__ import annotations

import pytest
from django.urls import reverse

from reviews.models import GoldTurn
from tests.reviews.test_quality_judging import accepted
from tests.tasks.helpers import create_task, generate_all, submit

pytestmark = pytest.mark.django_db


def test_an_admin_marks_an_accepted_turn_gold(
    client, project, ready_repository, contractor, reviewer, admin_user
):
    turn = accepted(project, ready_repository, contractor, reviewer).turns.get()
    client.force_login(admin_user)
    axis = project.axis_keys[0]
    response = client.post(
        reverse("admin:reviews_goldturn_add"),
        {"turn": turn.pk, "expected": "-1", "score_ranges": f'{{"A": {{"{axis}": [4, 5]}}}}',
         "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    gold = GoldTurn.objects.get()
    assert (gold.turn, gold.expected, gold.created_by) == (turn, -1, admin_user)
    assert gold.score_ranges == {"A": {axis: [4, 5]}}


def test_a_turn_not_accepted_is_refused_with_the_reason(
    client, project, ready_repository, contractor, admin_user
):
    task = submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:reviews_goldturn_add"),
        {"turn": task.turns.get().pk, "expected": "1", "score_ranges": "{}", "is_active": "on"},
    )
    assert response.status_code == 200
    assert "Only a turn of an accepted task can be gold." in response.content.decode()
    assert not GoldTurn.objects.exists()


def test_reviewers_cannot_mark_gold(client, reviewer):
    client.force_login(reviewer)
    response = client.get(reverse("admin:reviews_goldturn_add"))
    assert response.status_code in (302, 403)
    assert not GoldTurn.objects.exists()
