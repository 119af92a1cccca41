"""Every status change goes through marlin.state_machine.move() (issue 20).

A status written by a plain `.update(status=...)`, an assignment and save, a bulk_update
or raw SQL skips the TRANSITIONS table and the compare-and-set that closes the races
between workers, reapers and people. These tests list every state field of every model,
check each has a TRANSITIONS table covering its choices, and read the product's source for
any write of a state field outside move(). Creating a row in its first state is not a move.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.apps import apps

from repos.models import (
    CATALOGUE_IMPORT_TRANSITIONS,
    CLONE_TRANSITIONS,
    CatalogueImport,
    Repository,
)
from reviews.models import (
    AUDIT_TRANSITIONS,
    CLAIM_TRANSITIONS,
    EXPORT_TRANSITIONS,
    JUDGING_TRANSITIONS,
    ExportJob,
    JudgingTask,
    ReviewAudit,
    ReviewClaim,
)
from tasks.models import (
    CANDIDATE_TRANSITIONS,
    EVIDENCE_TRANSITIONS,
    TASK_TRANSITIONS,
    Candidate,
    EvidenceRun,
    Task,
    TaskEvent,
)

ROOT = Path(__file__).resolve().parents[2]
# (model, state field, its transitions).
STATE_MACHINES = [
    (Task, "status", TASK_TRANSITIONS),
    (Candidate, "status", CANDIDATE_TRANSITIONS),
    (EvidenceRun, "status", EVIDENCE_TRANSITIONS),
    (Repository, "clone_status", CLONE_TRANSITIONS),
    (CatalogueImport, "status", CATALOGUE_IMPORT_TRANSITIONS),
    (ExportJob, "status", EXPORT_TRANSITIONS),
    (ReviewClaim, "ending", CLAIM_TRANSITIONS),
    (JudgingTask, "status", JUDGING_TRANSITIONS),
    (ReviewAudit, "status", AUDIT_TRANSITIONS),
]
STATE_FIELDS = {field for _, field, _ in STATE_MACHINES}
# Fields named like a status that record a move rather than hold a state.
RECORDS = {(TaskEvent, "from_status"), (TaskEvent, "to_status")}
# The one place a state field is written.
MOVE = ROOT / "marlin" / "state_machine.py"
NOT_PRODUCT = {"tests", "bench", "migrations", ".venv", "node_modules"}


def test_every_model_with_a_status_field_has_a_state_machine():
    listed = {(model, field) for model, field, _ in STATE_MACHINES}
    found = {
        (model, field.name)
        for model in apps.get_models()
        if model._meta.app_label in ("tasks", "reviews", "repos", "marlin")
        for field in model._meta.concrete_fields
        if field.name == "status" or field.name.endswith("_status")
    }
    assert found - RECORDS <= listed, f"a status field without a state machine: {found - listed}"


@pytest.mark.parametrize(("model", "field", "transitions"), STATE_MACHINES)
def test_each_table_covers_its_fields_choices(model, field, transitions):
    choices = {value for value, _ in model._meta.get_field(field).choices}
    assert set(transitions) == choices
    assert set().union(*transitions.values()) <= choices


def _state_writes(source: str) -> list[tuple[int, str]]:
    """(line, what) for each write of a state field the source makes other than by move()."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, keywords = node.func.attr, {k.arg for k in node.keywords}
            if method == "update" and keywords & STATE_FIELDS:
                found.append(
                    (node.lineno, f".update({', '.join(sorted(keywords & STATE_FIELDS))}=)")
                )
            if method in ("update_or_create", "bulk_update", "bulk_create"):
                named = {
                    c.value for c in ast.walk(node) if isinstance(c, ast.Constant)
                } & STATE_FIELDS
                upserts = method != "bulk_create" or "update_fields" in keywords
                if upserts and named:
                    found.append((node.lineno, f".{method}({sorted(named)})"))
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr in STATE_FIELDS:
                found.append((node.lineno, f"assignment to .{target.attr}"))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in STATE_FIELDS
        ):
            found.append((node.lineno, f"setattr(..., {node.args[1].value!r})"))
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            sql = " ".join(node.value.upper().split())
            if (
                "UPDATE " in sql
                and " SET " in sql
                and any(f.upper() in sql.split(" SET ", 1)[1] for f in STATE_FIELDS)
            ):
                found.append((node.lineno, "raw SQL UPDATE of a state column"))
    return found


def _product_files() -> list[Path]:
    return [
        path
        for path in sorted(ROOT.rglob("*.py"))
        if not NOT_PRODUCT & set(path.relative_to(ROOT).parts) and path != MOVE
    ]


def test_no_code_writes_a_state_field_outside_move():
    files = _product_files()
    assert len(files) > 100  # the product's modules were found
    writes = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in files
        for line, what in _state_writes(path.read_text())
    ]
    assert writes == [], "state written outside move():\n" + "\n".join(writes)


@pytest.mark.parametrize(
    "source",
    [
        "ExportJob.objects.filter(pk=1).update(status='FAILED', error='x')",
        "job.status = ExportJob.Status.SUCCEEDED\njob.save()",
        "claim.ending = 'released'",
        "Repository.objects.bulk_update(rows, ['clone_status'])",
        "Task.objects.update_or_create(pk=1, defaults={'status': 'ACCEPTED'})",
        "setattr(task, 'status', 'ACCEPTED')",
        "cursor.execute('UPDATE tasks_task SET status = %s WHERE id = %s', [s, pk])",
    ],
)
def test_the_reader_sees_each_way_of_writing_a_state(source):
    assert _state_writes(source), source


@pytest.mark.parametrize(
    "source",
    [
        "Task.objects.filter(status='SUBMITTED').update(title='x')",
        "ExportJob.objects.create(status='QUEUED')",
        "move(job, to='RUNNING', transitions=EXPORT_TRANSITIONS)",
        "if task.status == 'SUBMITTED': pass",
    ],
)
def test_reads_filters_and_first_states_are_not_writes(source):
    assert _state_writes(source) == []
