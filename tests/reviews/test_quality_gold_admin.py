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


def _gold_file(tmp_path, *lines: str):
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_gold_turns_are_imported_from_a_file(
    tmp_path, project, ready_repository, contractor, reviewer, admin_user
):
    import io

    from django.core.management import call_command

    first = accepted(project, ready_repository, contractor, reviewer)
    second = accepted(project, ready_repository, contractor, reviewer, prompt="Add abs.")
    axis = project.axis_keys[0]
    path = _gold_file(
        tmp_path,
        f'{{"task_id": {first.pk}, "turn": 1, "expected": -1}}',
        "",
        f'{{"task_id": {second.pk}, "expected": 1, "score_ranges": {{"B": {{"{axis}": [3, 5]}}}}}}',
    )
    out = io.StringIO()
    call_command("import_gold", str(path), "--by", admin_user.username, stdout=out)
    assert "2 gold turns imported." in out.getvalue()
    assert sorted(GoldTurn.objects.values_list("turn__task_id", "expected")) == [
        (first.pk, -1),
        (second.pk, 1),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "Line 2: not JSON"),
        ('{"task_id": 999999, "expected": 1}', "Line 2: task 999999 has no turn 1."),
        ('{"task_id": TASK, "expected": 5}', "Line 2: The expected direction is -1"),
        ('{"task_id": TASK, "expected": 1, "why": "x"}', "Line 2: unknown field 'why'"),
        ('{"task_id": TASK, "expected": 1}', "Line 2: This turn is gold already."),
    ],
)
def test_a_bad_line_imports_nothing_and_is_named(
    tmp_path, project, ready_repository, contractor, reviewer, admin_user, line, message
):
    from django.core.management import CommandError, call_command

    task = accepted(project, ready_repository, contractor, reviewer)
    good = f'{{"task_id": {task.pk}, "expected": -1}}'
    path = _gold_file(tmp_path, good, line.replace("TASK", str(task.pk)))
    with pytest.raises(CommandError, match=message):
        call_command("import_gold", str(path), "--by", admin_user.username)
    assert not GoldTurn.objects.exists()


def test_only_admins_import_gold(tmp_path, project, ready_repository, contractor, reviewer):
    from django.core.management import CommandError, call_command

    task = accepted(project, ready_repository, contractor, reviewer)
    path = _gold_file(tmp_path, f'{{"task_id": {task.pk}, "expected": -1}}')
    with pytest.raises(CommandError, match="Only admins mark gold turns"):
        call_command("import_gold", str(path), "--by", reviewer.username)
    assert not GoldTurn.objects.exists()
