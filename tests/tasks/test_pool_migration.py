"""Migration 0012: a project's endpoint_a and endpoint_b become its pool, and every task
records the pair it compares, with no data lost."""

from __future__ import annotations

import pytest

from tests.migration_steps import back_to_latest, migrate_to  # noqa: F401 - a fixture

BEFORE = [("tasks", "0011_evidence")]
AFTER = [("tasks", "0012_endpoint_pools")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_latest")
def test_two_endpoint_projects_become_pools_and_tasks_keep_their_pair():
    old = migrate_to(BEFORE)
    Endpoint = old.get_model("tasks", "ModelEndpoint")
    Project = old.get_model("tasks", "Project")
    Task = old.get_model("tasks", "Task")
    Turn = old.get_model("tasks", "Turn")
    Candidate = old.get_model("tasks", "Candidate")
    Judgement = old.get_model("tasks", "Judgement")
    user = old.get_model("auth", "User").objects.create(username="carol")
    repository = old.get_model("repos", "Repository").objects.create(
        full_name="octo/calc", clone_url="https://example.com/octo/calc.git"
    )
    e1, e2, e3 = (Endpoint.objects.create(name=f"model-{n}") for n in (1, 2, 3))
    # e3 made first so its id is above e1's: the pair is stored in id order whatever the slots.
    project = Project.objects.create(name="Parsers", endpoint_a=e3, endpoint_b=e1)
    other = Project.objects.create(name="Other", endpoint_a=e2, endpoint_b=e3)

    def task(on, title):
        return Task.objects.create(
            project=on, repository=repository, contractor=user, base_ref="main",
            commit_sha="a" * 40, title=title, kind="bug_fix", status="ACCEPTED",
        )  # fmt: skip

    judged = task(project, "judged")
    turn = Turn.objects.create(task=judged, number=1, prompt="Fix it")
    Candidate.objects.create(turn=turn, slot="A", endpoint=e3, diff="diff A", status="SUCCEEDED")
    Candidate.objects.create(turn=turn, slot="B", endpoint=e1, diff="diff B", status="SUCCEEDED")
    Judgement.objects.create(turn=turn, round=1, preference=-2, scores={"A": {}, "B": {}})
    # Answered by e2 and e3 before an admin switched the project to e3 and e1.
    moved = task(project, "before the switch")
    moved_turn = Turn.objects.create(task=moved, number=1, prompt="Add it")
    Candidate.objects.create(turn=moved_turn, slot="A", endpoint=e2, status="SUCCEEDED")
    Candidate.objects.create(turn=moved_turn, slot="B", endpoint=e3, status="SUCCEEDED")
    draft = task(other, "no candidates yet")

    new = migrate_to(AFTER)
    NewTask = new.get_model("tasks", "Task")
    pools = {
        name: [(row.endpoint_id, row.is_enabled, str(row.weight)) for row in rows]
        for name, rows in (
            (p.name, p.pool.order_by("pk"))
            for p in new.get_model("tasks", "Project").objects.order_by("name")
        )
    }
    assert pools == {
        "Other": [(e2.pk, True, "1.00"), (e3.pk, True, "1.00")],
        "Parsers": [(e3.pk, True, "1.00"), (e1.pk, True, "1.00")],
    }
    pairs = {t.title: (t.first_endpoint_id, t.second_endpoint_id) for t in NewTask.objects.all()}
    assert pairs == {
        "judged": (e1.pk, e3.pk),
        "before the switch": (e2.pk, e3.pk),
        "no candidates yet": (e2.pk, e3.pk),
    }
    # Nothing else moved: the candidates and the judgement are as they were.
    NewCandidate = new.get_model("tasks", "Candidate")
    assert sorted(
        NewCandidate.objects.filter(turn__task_id=judged.pk).values_list(
            "slot", "endpoint_id", "diff"
        )
    ) == [("A", e3.pk, "diff A"), ("B", e1.pk, "diff B")]
    assert new.get_model("tasks", "Judgement").objects.get().preference == -2
    assert {p.pair_sampling for p in new.get_model("tasks", "Project").objects.all()} == {
        "adaptive"
    }
    assert draft.pk in set(NewTask.objects.values_list("pk", flat=True))
