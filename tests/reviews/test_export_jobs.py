"""Export filters, export jobs (in-process and through a real worker), the export pages and
the export_dataset command's filters."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import threading
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from marlin.exceptions import ApplicationError
from repos import git_client
from repos import services as repo_services
from reviews import exports
from reviews.export_filters import ExportFilters
from reviews.export_job_services import export_job_execute, export_job_start, write_export
from reviews.exports import export_lines, judged_turn_count, native_records
from reviews.models import ExportJob
from tasks import generation_services, services
from tasks.models import Candidate, Task
from tests.api_clients import api_client_for
from tests.conftest import DEMO_FILES, wait_for
from tests.factories import ModelEndpointFactory, ProjectFactory, RepositoryFactory, pool_endpoints
from tests.tasks.helpers import decide, valid_scores

JUSTIFICATION = "A careful justification of this judgement."
MARCH = {day: datetime(2024, 3, day, 12, 0, tzinfo=UTC) for day in range(1, 8)}


# --- building tasks --------------------------------------------------------------------


def _generate_queued(task: Task) -> None:
    for candidate in Candidate.objects.filter(turn__task=task, status=Candidate.Status.QUEUED):
        generation_services.candidate_generate(candidate_id=candidate.pk)
    task.refresh_from_db()
    assert task.status == Task.Status.AWAITING_PREFERENCE, task.status


def build_task(
    *,
    contractor,
    project,
    repository,
    reviewer,
    kind: str = Task.Kind.BUG_FIX,
    judgements: tuple[tuple[int, tuple[int, int]], ...] = ((-2, (4, 2)),),
    outcome: str = "ACCEPT",
    on: datetime | None = None,
    prompt: str = "Make div safe.",
) -> Task:
    """A task judged turn by turn (preference, (score A, score B)), then submitted and
    accepted, bounced, or left SUBMITTED (outcome None), all on the day `on`."""
    with time_machine.travel(on or timezone.now(), tick=True):
        task = services.task_create(
            contractor=contractor, project=project, repository=repository, ref="",
            title="Guard division", kind=kind, prompt=prompt,
        )  # fmt: skip
        _generate_queued(task)
        *earlier, (last_pref, (last_a, last_b)) = judgements
        for number, (preference, (a, b)) in enumerate(earlier, start=2):
            services.task_follow_up(
                task=task, by=contractor, preference=preference,
                scores=valid_scores(project, a, b), justification=JUSTIFICATION,
                prompt=f"{prompt} Follow-up {number}.",
            )  # fmt: skip
            _generate_queued(task)
        task = services.task_submit(
            task=task, by=contractor, preference=last_pref,
            scores=valid_scores(project, last_a, last_b), justification=JUSTIFICATION,
        )  # fmt: skip
        if outcome == "ACCEPT":
            decide(task, reviewer=reviewer)
        elif outcome == "BOUNCE":
            decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Please redo this.")
    task.refresh_from_db()
    return task


def _served_repository(git_server, full_name: str):
    repository = RepositoryFactory(full_name=full_name)
    owner, name = full_name.split("/")
    git_client.create_bare_repository(
        git_server.root / owner / f"{name}.git", DEMO_FILES, message="Initial commit"
    )
    repository.clone_url = f"{git_server.base_url}/{full_name}.git"
    repository.save()
    shutil.rmtree(repo_services.repository_cache_path(repository), ignore_errors=True)
    repository.queue_clone()
    repo_services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    assert repository.is_ready, repository.clone_error
    return repository


@pytest.fixture
def export_storage(tmp_path, monkeypatch):
    """Export files of this test go to its own folder (a worker started later too)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    monkeypatch.setenv("MARLIN_EXPORT_DIR", str(folder))
    monkeypatch.setattr(
        ExportJob._meta.get_field("file"), "storage", FileSystemStorage(location=folder)
    )
    return folder


@pytest.fixture
def world(
    ready_repository, git_server, repo_cache_dir, project, contractor, other_contractor, reviewer
):
    """Six tasks on two projects and two repositories, submitted on different days.

    name  project   repository  contractor  kind          turns (preference)  state
    t1    project   calc        carol       bug_fix       -2                  accepted 03-01
    t2    project   other       carol       feature       +1, +3              accepted 03-02
    t3    project2  calc        dave        security_fix  0 (tie)             accepted 03-03
    t4    project2  other       dave        docs          -3                  accepted 03-04
    t5    project   calc        carol       bug_fix       -1                  submitted 03-05
    t6    project2  calc        dave        refactor      +2                  bounced 03-06
    """
    other = _served_repository(git_server, "demo/other")
    project2 = ProjectFactory(name="Second project")
    spec = {
        "t1": (project, ready_repository, contractor, "bug_fix", ((-2, (4, 2)),), "ACCEPT"),
        "t2": (project, other, contractor, "feature", ((1, (3, 4)), (3, (2, 4))), "ACCEPT"),
        "t3": (project2, ready_repository, other_contractor, "security_fix", ((0, (3, 3)),),
               "ACCEPT"),
        "t4": (project2, other, other_contractor, "docs", ((-3, (4, 2)),), "ACCEPT"),
        "t5": (project, ready_repository, contractor, "bug_fix", ((-1, (4, 3)),), None),
        "t6": (project2, ready_repository, other_contractor, "refactor", ((2, (2, 4)),),
               "BOUNCE"),
    }  # fmt: skip
    tasks = {}
    for day, (name, (proj, repo, who, kind, judgements, outcome)) in enumerate(
        spec.items(), start=1
    ):
        tasks[name] = build_task(
            contractor=who, project=proj, repository=repo, reviewer=reviewer, kind=kind,
            judgements=judgements, outcome=outcome, on=MARCH[day],
            prompt=f"Make div safe ({name}).",
        )  # fmt: skip
    assert [t.status for t in tasks.values()] == ["ACCEPTED"] * 4 + ["SUBMITTED", "BOUNCED"]
    return {
        **tasks,
        "project": project,
        "project2": project2,
        "calc": ready_repository,
        "other": other,
    }


def turns(world: dict, filters: ExportFilters) -> list[tuple[str, int]]:
    """The (task name, turn number) of every native record the filters export, in order."""
    names = {world[n].pk: n for n in ("t1", "t2", "t3", "t4", "t5", "t6")}
    return [(names[r["task_id"]], r["turn"]) for r in native_records(filters)]


ACCEPTED_TURNS = [("t1", 1), ("t2", 1), ("t2", 2), ("t3", 1), ("t4", 1)]
ALL_TURNS = [*ACCEPTED_TURNS, ("t5", 1), ("t6", 1)]


# --- filters on native records ---------------------------------------------------------


def test_by_default_only_accepted_tasks_are_exported(world):
    assert turns(world, ExportFilters()) == ACCEPTED_TURNS
    assert judged_turn_count(ExportFilters()) == len(ACCEPTED_TURNS)
    assert {r["status"] for r in native_records(ExportFilters())} == {"ACCEPTED"}

    everything = ExportFilters(accepted_only=False)
    assert turns(world, everything) == ALL_TURNS
    assert judged_turn_count(everything) == len(ALL_TURNS)
    statuses = {r["task_id"]: r["status"] for r in native_records(everything)}
    assert statuses[world["t5"].pk] == "SUBMITTED"
    assert statuses[world["t6"].pk] == "BOUNCED"


def test_the_project_filter(world):
    assert turns(world, ExportFilters(project_id=world["project"].pk)) == [
        ("t1", 1), ("t2", 1), ("t2", 2),
    ]  # fmt: skip
    assert turns(world, ExportFilters(project_id=world["project2"].pk)) == [("t3", 1), ("t4", 1)]
    assert turns(world, ExportFilters(project_id=world["project2"].pk, accepted_only=False)) == [
        ("t3", 1),
        ("t4", 1),
        ("t6", 1),
    ]
    records = list(native_records(ExportFilters(project_id=world["project2"].pk)))
    assert {r["project"] for r in records} == {"Second project"}


def test_the_submission_day_range_is_inclusive(world):
    def days(start, end, **more):
        return turns(world, ExportFilters(submitted_from=start, submitted_to=end, **more))

    assert days(date(2024, 3, 2), date(2024, 3, 3)) == [("t2", 1), ("t2", 2), ("t3", 1)]
    assert days(date(2024, 3, 2), date(2024, 3, 2)) == [("t2", 1), ("t2", 2)]
    assert days(date(2024, 3, 4), None) == [("t4", 1)]
    assert days(None, date(2024, 3, 1)) == [("t1", 1)]
    assert days(date(2024, 3, 5), None, accepted_only=False) == [("t5", 1), ("t6", 1)]
    assert days(date(2024, 3, 7), None, accepted_only=False) == []
    assert days(date(2023, 1, 1), date(2024, 2, 29)) == []
    assert (
        judged_turn_count(
            ExportFilters(submitted_from=date(2024, 3, 2), submitted_to=date(2024, 3, 3))
        )
        == 3
    )
    record = next(native_records(ExportFilters(submitted_to=date(2024, 3, 1))))
    assert record["submitted_at"].startswith("2024-03-01T")


def test_the_day_range_includes_the_whole_first_and_last_day(world):
    def at(name: str, moment: datetime) -> None:
        Task.objects.filter(pk=world[name].pk).update(submitted_at=moment)

    at("t1", datetime(2024, 5, 9, 23, 59, 59, 999999, tzinfo=UTC))  # just before
    at("t2", datetime(2024, 5, 10, 0, 0, 0, tzinfo=UTC))  # first instant of the first day
    at("t3", datetime(2024, 5, 11, 23, 59, 59, 999999, tzinfo=UTC))  # last instant of the last
    at("t4", datetime(2024, 5, 12, 0, 0, 0, tzinfo=UTC))  # just after
    window = ExportFilters(submitted_from=date(2024, 5, 10), submitted_to=date(2024, 5, 11))
    assert turns(world, window) == [("t2", 1), ("t2", 2), ("t3", 1)]
    assert judged_turn_count(window) == 3


def test_the_repository_filter(world):
    calc, other = world["calc"].pk, world["other"].pk
    assert turns(world, ExportFilters(repository_ids=(calc,))) == [("t1", 1), ("t3", 1)]
    assert turns(world, ExportFilters(repository_ids=(other,))) == [
        ("t2", 1), ("t2", 2), ("t4", 1),
    ]  # fmt: skip
    assert turns(world, ExportFilters(repository_ids=(calc, other))) == ACCEPTED_TURNS
    assert turns(world, ExportFilters(repository_ids=(calc,), accepted_only=False)) == [
        ("t1", 1), ("t3", 1), ("t5", 1), ("t6", 1),
    ]  # fmt: skip
    assert {r["repository"] for r in native_records(ExportFilters(repository_ids=(other,)))} == {
        "demo/other"
    }


def test_the_kind_filter(world):
    assert turns(world, ExportFilters(kinds=("feature", "docs"))) == [
        ("t2", 1), ("t2", 2), ("t4", 1),
    ]  # fmt: skip
    assert turns(world, ExportFilters(kinds=("bug_fix",))) == [("t1", 1)]
    assert turns(world, ExportFilters(kinds=("bug_fix",), accepted_only=False)) == [
        ("t1", 1), ("t5", 1),
    ]  # fmt: skip
    assert turns(world, ExportFilters(kinds=("tests",))) == []


def test_the_endpoint_filter_keeps_tasks_of_projects_comparing_the_endpoint(world):
    project, project2 = world["project"], world["project2"]
    # Either side of the comparison counts.
    assert turns(world, ExportFilters(endpoint_ids=(pool_endpoints(project)[0].pk,))) == [
        ("t1", 1), ("t2", 1), ("t2", 2),
    ]  # fmt: skip
    assert turns(world, ExportFilters(endpoint_ids=(pool_endpoints(project2)[1].pk,))) == [
        ("t3", 1), ("t4", 1),
    ]  # fmt: skip
    assert (
        turns(
            world,
            ExportFilters(
                endpoint_ids=(pool_endpoints(project)[1].pk, pool_endpoints(project2)[0].pk)
            ),
        )
        == ACCEPTED_TURNS
    )
    unused = ModelEndpointFactory(name="never-compared")
    assert turns(world, ExportFilters(endpoint_ids=(unused.pk,))) == []
    # A third project comparing one endpoint of each: its (lack of) tasks change nothing,
    # and the filter matches the endpoint on any project comparing it.
    ProjectFactory(endpoint_a=pool_endpoints(project2)[0], endpoint_b=pool_endpoints(project)[1])
    assert turns(world, ExportFilters(endpoint_ids=(pool_endpoints(project2)[0].pk,))) == [
        ("t3", 1), ("t4", 1),
    ]  # fmt: skip


def test_the_contractor_filter(world, contractor, other_contractor):
    assert turns(world, ExportFilters(contractor_id=other_contractor.pk)) == [
        ("t3", 1), ("t4", 1),
    ]  # fmt: skip
    assert turns(world, ExportFilters(contractor_id=other_contractor.pk, accepted_only=False)) == [
        ("t3", 1), ("t4", 1), ("t6", 1),
    ]  # fmt: skip
    assert turns(world, ExportFilters(contractor_id=contractor.pk)) == [
        ("t1", 1), ("t2", 1), ("t2", 2),
    ]  # fmt: skip
    records = native_records(ExportFilters(contractor_id=contractor.pk))
    assert {r["contractor_id"] for r in records} == {contractor.pk}


def test_the_minimum_strength_filter(world):
    # Preferences: t1 -2, t2 +1 then +3, t3 0 (a tie), t4 -3.
    assert turns(world, ExportFilters(min_strength=0)) == ACCEPTED_TURNS  # ties kept
    assert turns(world, ExportFilters(min_strength=1)) == [
        ("t1", 1), ("t2", 1), ("t2", 2), ("t4", 1),
    ]  # fmt: skip
    assert turns(world, ExportFilters(min_strength=2)) == [("t1", 1), ("t2", 2), ("t4", 1)]
    assert turns(world, ExportFilters(min_strength=3)) == [("t2", 2), ("t4", 1)]
    strong = list(native_records(ExportFilters(min_strength=3)))
    assert sorted(r["preference"] for r in strong) == [-3, 3]
    assert all(r["preference"] != 0 for r in native_records(ExportFilters(min_strength=1)))


def test_filters_combine(world, contractor):
    combined = ExportFilters(
        project_id=world["project"].pk,
        contractor_id=contractor.pk,
        kinds=("bug_fix", "feature"),
        repository_ids=(world["other"].pk,),
        submitted_from=date(2024, 3, 1),
        submitted_to=date(2024, 3, 2),
        min_strength=2,
    )
    assert turns(world, combined) == [("t2", 2)]
    assert judged_turn_count(combined) == 2  # both turns of t2 are counted, then filtered


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_strength": 4}, "minimum preference strength"),
        ({"min_strength": -1}, "minimum preference strength"),
        (
            {"submitted_from": date(2024, 3, 2), "submitted_to": date(2024, 3, 1)},
            "starts after it ends",
        ),
        ({"kinds": ("bug_fix", "haiku")}, "Unknown task kind: haiku"),
    ],
)
def test_invalid_filters_are_refused(fields, message):
    with pytest.raises(ApplicationError, match=message):
        ExportFilters(**fields)


def test_filters_round_trip_through_json():
    full = ExportFilters(
        project_id=7,
        accepted_only=False,
        submitted_from=date(2024, 3, 1),
        submitted_to=date(2024, 3, 31),
        repository_ids=(3, 5),
        kinds=("bug_fix", "docs"),
        endpoint_ids=(2, 9),
        contractor_id=11,
        min_strength=2,
    )
    stored = json.loads(json.dumps(full.to_json()))  # as a JSONField keeps it
    assert stored["submitted_from"] == "2024-03-01"
    assert stored["kinds"] == ["bug_fix", "docs"]
    assert ExportFilters.from_json(stored) == full
    assert ExportFilters.from_json(json.loads(json.dumps(ExportFilters().to_json()))) == (
        ExportFilters()
    )
    assert ExportFilters.from_json({}) == ExportFilters()


# --- export jobs, in process ------------------------------------------------------------


def _file_bytes(job: ExportJob) -> bytes:
    with job.file.open("rb") as handle:
        return handle.read()


@pytest.mark.parametrize(
    ("fmt", "records"),
    [("native", 5), ("trl", 4), ("openai", 4), ("criterion:security", 4), ("csv", 5)],
)
def test_an_export_job_writes_its_file_and_records_what_it_wrote(
    world, admin_user, export_storage, fmt, records
):
    job = export_job_start(by=admin_user, fmt=fmt, filters=ExportFilters())
    assert job.status == ExportJob.Status.QUEUED
    job = export_job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.SUCCEEDED, job.error
    # Every judged turn is counted; the pairwise formats leave the tie out of the file.
    assert job.total == job.done == len(ACCEPTED_TURNS) == judged_turn_count(ExportFilters())
    assert job.percent == 100
    data = _file_bytes(job)
    assert data == "".join(export_lines(fmt=fmt, filters=ExportFilters())).encode()
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(data.decode())))
        assert len(rows) - 1 == records == job.records  # one row per turn after the header
    else:
        lines = data.decode().splitlines()
        assert len(lines) == records == job.records
        assert all(json.loads(line) for line in lines)
    assert job.size_bytes == len(data) == export_storage.joinpath(job.file.name).stat().st_size
    assert job.sha256 == hashlib.sha256(data).hexdigest()
    assert job.started_at and job.finished_at and job.started_at <= job.finished_at
    assert job.error == ""


def test_an_export_job_with_filters_exports_only_what_they_select(
    world, admin_user, export_storage, other_contractor
):
    filters = ExportFilters(contractor_id=other_contractor.pk, accepted_only=False)
    job = export_job_execute(export_job_start(by=admin_user, fmt="native", filters=filters).pk)
    assert ExportFilters.from_json(job.filters) == filters
    assert job.total == job.done == job.records == 3
    records = [json.loads(line) for line in _file_bytes(job).decode().splitlines()]
    assert [r["task_id"] for r in records] == [world[n].pk for n in ("t3", "t4", "t6")]


def test_the_same_filters_on_the_same_data_give_the_same_bytes(world, admin_user, export_storage):
    filters = ExportFilters(project_id=world["project"].pk)
    first = export_job_execute(export_job_start(by=admin_user, fmt="trl", filters=filters).pk)
    second = export_job_execute(export_job_start(by=admin_user, fmt="trl", filters=filters).pk)
    assert first.pk != second.pk and first.file.name != second.file.name
    assert _file_bytes(first) == _file_bytes(second)
    assert len(_file_bytes(first).splitlines()) == 3
    assert first.sha256 == second.sha256 and first.size_bytes == second.size_bytes


def test_the_file_is_named_after_the_format(project, admin_user, export_storage):
    # No tasks at all: the jobs still succeed, with an empty export (or just the CSV header).
    names = {}
    for fmt in ("csv", "native", "criterion:security"):
        job = export_job_execute(
            export_job_start(by=admin_user, fmt=fmt, filters=ExportFilters()).pk
        )
        assert job.status == ExportJob.Status.SUCCEEDED
        assert job.total == job.done == 0
        names[fmt] = job.file.name
    assert names["csv"] == f"marlin-csv-{ExportJob.objects.get(format='csv').pk}.csv"
    assert names["native"].endswith(".jsonl")
    assert names["criterion:security"].startswith("marlin-criterion-security-")
    assert names["criterion:security"].endswith(".jsonl")
    csv_job = ExportJob.objects.get(format="csv")
    assert _file_bytes(csv_job).decode().splitlines() == [",".join(exports.CSV_COLUMNS)]
    assert csv_job.records == 0


def test_running_a_job_again_leaves_one_succeeded_job_and_the_same_file(
    world, admin_user, export_storage
):
    job = export_job_start(by=admin_user, fmt="native", filters=ExportFilters())
    first = export_job_execute(job.pk)
    sha, name = first.sha256, first.file.name
    # A redelivery of a finished job changes nothing.
    assert export_job_execute(job.pk) is None
    # A redelivery after the worker died mid-run (the job still RUNNING) rewrites the file.
    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.RUNNING, done=1)
    again = export_job_execute(job.pk)
    assert again is not None
    assert ExportJob.objects.count() == 1
    job.refresh_from_db()
    assert job.status == ExportJob.Status.SUCCEEDED
    assert job.sha256 == sha and job.file.name == name
    assert hashlib.sha256(_file_bytes(job)).hexdigest() == sha
    assert job.total == job.done == job.records == len(ACCEPTED_TURNS)
    assert sorted(p.name for p in export_storage.iterdir()) == [name]  # no stray copy


def test_a_failing_export_marks_the_job_failed(db, admin_user, export_storage, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(exports, "_chunks", broken)
    job = export_job_start(by=admin_user, fmt="native", filters=ExportFilters())
    with pytest.raises(RuntimeError):
        export_job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert job.error == "The export failed: RuntimeError."
    assert "disk on fire" not in job.error
    assert not job.file and list(export_storage.iterdir()) == []


def test_starting_a_job_checks_the_format_and_the_user(db, admin_user, contractor):
    from marlin.exceptions import PermissionDeniedError

    with pytest.raises(ApplicationError, match="No rubric axis 'nope'"):
        export_job_start(by=admin_user, fmt="criterion:nope", filters=ExportFilters())
    with pytest.raises(ApplicationError, match="Unknown format 'parquet'"):
        export_job_start(by=admin_user, fmt="parquet", filters=ExportFilters())
    with pytest.raises(ApplicationError, match="No such project"):
        export_job_start(by=admin_user, fmt="native", filters=ExportFilters(project_id=999999))
    with pytest.raises(PermissionDeniedError):
        export_job_start(by=contractor, fmt="native", filters=ExportFilters())
    assert ExportJob.objects.count() == 0


# --- the export pages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("csv", "text/csv"), ("native", "application/x-ndjson")]
)
def test_the_page_and_the_api_download_the_same_file_the_same_way(
    world, admin_user, export_storage, fmt, content_type
):
    job = export_job_execute(export_job_start(by=admin_user, fmt=fmt, filters=ExportFilters()).pk)
    page = _client_for(admin_user).get(reverse("reviews:export_download", args=[job.pk]))
    api = api_client_for(admin_user).get(reverse("api-export-download", args=[job.pk]))
    for answer in (page, api):
        assert answer.status_code == 200
        assert answer["Content-Type"] == content_type
        assert answer["Content-Disposition"] == f'attachment; filename="{job.filename}"'
        assert b"".join(answer.streaming_content) == _file_bytes(job)


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def worker(export_storage, request):
    """A real Celery worker, started after its export folder is set."""
    return request.getfixturevalue("celery_worker_process")


def _worker_built_task(*, contractor, project, repository, reviewer, kind, prompt, accept=True):
    """A task whose candidates the worker generates; judged and decided in process."""
    task = services.task_create(
        contractor=contractor, project=project, repository=repository, ref="",
        title="Guard division", kind=kind, prompt=prompt,
    )  # fmt: skip
    wait_for(
        lambda: Task.objects.get(pk=task.pk).status != Task.Status.GENERATING,
        message=f"the candidates of task {task.pk}",
    )
    task.refresh_from_db()
    assert task.status == Task.Status.AWAITING_PREFERENCE, task.status
    task = services.task_submit(
        task=task, by=contractor, preference=-2, scores=valid_scores(project, 4, 2),
        justification=JUSTIFICATION,
    )  # fmt: skip
    if accept:
        decide(task, reviewer=reviewer)
    return task


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_export_started_on_the_page_is_written_by_the_worker_and_downloaded(
    worker, ready_repository, project, contractor, other_contractor, reviewer, admin_user
):
    wanted = _worker_built_task(
        contractor=contractor, project=project, repository=ready_repository,
        reviewer=reviewer, kind="bug_fix", prompt="Make div safe (wanted).",
    )  # fmt: skip
    _worker_built_task(  # another kind
        contractor=contractor, project=project, repository=ready_repository,
        reviewer=reviewer, kind="feature", prompt="Add a mul function.",
    )  # fmt: skip
    _worker_built_task(  # not accepted
        contractor=contractor, project=project, repository=ready_repository,
        reviewer=reviewer, kind="bug_fix", prompt="Make div safe (pending).", accept=False,
    )  # fmt: skip
    _worker_built_task(  # another contractor
        contractor=other_contractor, project=project, repository=ready_repository,
        reviewer=reviewer, kind="bug_fix", prompt="Make div safe (dave).",
    )  # fmt: skip
    today = timezone.localdate().isoformat()
    ada = _client_for(admin_user)

    response = ada.post(
        reverse("reviews:export"),
        {
            "format": "trl",
            "project": project.pk,
            "submitted_from": today,
            "submitted_to": today,
            "repositories": f" {ready_repository.full_name} ",
            "kinds": ["bug_fix"],
            "endpoints": [pool_endpoints(project)[0].pk, pool_endpoints(project)[1].pk],
            "contractor": contractor.username,
            "min_strength": "1",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    job = ExportJob.objects.get()
    assert response.url == reverse("reviews:export_job", args=[job.pk])
    assert job.requested_by == admin_user and job.format == "trl"
    assert ExportFilters.from_json(job.filters) == ExportFilters(
        project_id=project.pk,
        submitted_from=timezone.localdate(),
        submitted_to=timezone.localdate(),
        repository_ids=(ready_repository.pk,),
        kinds=("bug_fix",),
        endpoint_ids=tuple(sorted((pool_endpoints(project)[0].pk, pool_endpoints(project)[1].pk))),
        contractor_id=contractor.pk,
        min_strength=1,
    )

    wait_for(
        lambda: (
            ExportJob.objects.get(pk=job.pk).status
            in (ExportJob.Status.SUCCEEDED, ExportJob.Status.FAILED)
        ),
        message="the export job",
    )
    job.refresh_from_db()
    assert job.status == ExportJob.Status.SUCCEEDED, job.error
    assert job.total == job.done == job.records == 1

    fragment = ada.get(reverse("reviews:export_job", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    html = fragment.content.decode()
    download_url = reverse("reviews:export_download", args=[job.pk])
    assert "<html" not in html  # the fragment alone
    assert 'id="export-status">Ready<' in html
    assert f'href="{download_url}"' in html
    assert "hx-get" not in html  # a finished job stops polling
    assert "1 of 1 judged turns" in html
    page = ada.get(reverse("reviews:export_job", args=[job.pk]))
    assert page.status_code == 200 and "<html" in page.content.decode()
    assert f'href="{download_url}"' in page.content.decode()

    download = ada.get(download_url)
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="marlin-trl-{job.pk}.jsonl"'
    assert download["Content-Type"] == "application/x-ndjson"
    body = b"".join(download.streaming_content)
    assert hashlib.sha256(body).hexdigest() == job.sha256 and len(body) == job.size_bytes
    records = [json.loads(line) for line in body.decode().splitlines()]
    (native,) = native_records(ExportFilters(kinds=("bug_fix",), contractor_id=contractor.pk))
    assert native["task_id"] == wanted.pk
    assert len(records) == 1
    # What the models were sent (the default prompt style), as the native record keeps it.
    assert records[0]["prompt"] == native["model_prompt"]
    assert records[0]["prompt"][-1]["content"].endswith("Make div safe (wanted).")
    assert records[0]["chosen"] == [
        {"role": "assistant", "content": native["candidates"]["A"]["answer"]}
    ]
    assert records[0]["rejected"] == [
        {"role": "assistant", "content": native["candidates"]["B"]["answer"]}
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "parquet"}, "Unknown format parquet: use native, trl, openai, csv or"),
        ({"format": "criterion:nope"}, "Unknown format criterion:nope"),
        ({"repositories": "demo/calc, nobody/missing"}, "Unknown repository: nobody/missing."),
        ({"contractor": "ghost"}, escape("No user named 'ghost'.")),
        (
            {"submitted_from": "2024-03-02", "submitted_to": "2024-03-01"},
            "The date range starts after it ends.",
        ),
        ({"submitted_from": "2024-02-30"}, "Enter a valid date."),
        ({"min_strength": "4"}, "Select a valid choice. 4 is not one of the available choices."),
        ({"kinds": ["haiku"]}, "Select a valid choice. haiku is not one of the available"),
    ],
)
def test_bad_input_on_the_export_page_is_a_400_and_starts_nothing(
    ready_repository, project, contractor, admin_user, change, message
):
    data = {"format": "native", "repositories": "demo/calc", "contractor": "carol", **change}
    response = _client_for(admin_user).post(reverse("reviews:export"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert ExportJob.objects.count() == 0


def test_a_valid_post_queues_one_job(ready_repository, project, contractor, admin_user):
    # The control for the 400 cases above: the same base data is accepted.
    data = {"format": "native", "repositories": "demo/calc", "contractor": "carol"}
    response = _client_for(admin_user).post(reverse("reviews:export"), data)
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.QUEUED
    assert job.filters["repository_ids"] == [ready_repository.pk]
    assert job.filters["contractor_id"] == contractor.pk
    page = _client_for(admin_user).get(reverse("reviews:export"))
    assert page.status_code == 200
    assert reverse("reviews:export_job", args=[job.pk]) in page.content.decode()


@pytest.mark.parametrize("status", ["QUEUED", "RUNNING", "FAILED"])
def test_a_job_not_yet_succeeded_cannot_be_downloaded(db, admin_user, export_storage, status):
    job = export_job_start(by=admin_user, fmt="native", filters=ExportFilters())
    ExportJob.objects.filter(pk=job.pk).update(status=status)
    ada = _client_for(admin_user)
    assert ada.get(reverse("reviews:export_download", args=[job.pk])).status_code == 404
    fragment = ada.get(reverse("reviews:export_job", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert "export-download" not in fragment.content.decode()
    if status != "FAILED":
        assert "hx-get" in fragment.content.decode()  # still polling
    assert ada.get(reverse("reviews:export_download", args=[job.pk + 1000])).status_code == 404


@pytest.mark.parametrize("persona", ["contractor", "reviewer"])
def test_only_admins_reach_the_export_pages(db, admin_user, export_storage, persona, request):
    job = export_job_execute(
        export_job_start(by=admin_user, fmt="native", filters=ExportFilters()).pk
    )
    urls = [
        reverse("reviews:export"),
        reverse("reviews:export_job", args=[job.pk]),
        reverse("reviews:export_download", args=[job.pk]),
    ]
    ada = _client_for(admin_user)
    assert [ada.get(url).status_code for url in urls] == [200, 200, 200]
    client = _client_for(request.getfixturevalue(persona))
    assert [client.get(url).status_code for url in urls] == [403, 403, 403]
    assert client.get(urls[1], HTTP_HX_REQUEST="true").status_code == 403
    assert client.post(urls[0], {"format": "native"}).status_code == 403
    assert ExportJob.objects.count() == 1
    anonymous = Client()
    assert all(anonymous.get(url).status_code == 302 for url in urls)


# --- the export_dataset command ---------------------------------------------------------


def _command(*args: str, out_path, stderr=None) -> list[dict]:
    call_command("export_dataset", *args, "-o", str(out_path), stderr=stderr or io.StringIO())
    return [json.loads(line) for line in out_path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (lambda w: ["--kind", "feature", "--kind", "docs"], [("t2", 1), ("t2", 2), ("t4", 1)]),
        (lambda w: ["--repository", "demo/calc"], [("t1", 1), ("t3", 1)]),
        (
            lambda w: ["--repository", "demo/calc", "--include-unaccepted"],
            [("t1", 1), ("t3", 1), ("t5", 1), ("t6", 1)],
        ),
        (lambda w: ["--contractor", "dave"], [("t3", 1), ("t4", 1)]),
        (lambda w: ["--endpoint", pool_endpoints(w["project"])[1].name], [("t1", 1), ("t2", 1), ("t2", 2)]),
        (
            lambda w: ["--endpoint", pool_endpoints(w["project"])[1].name, "--endpoint",
                       pool_endpoints(w["project2"])[0].name],
            ACCEPTED_TURNS,
        ),  # fmt: skip
        (lambda w: ["--min-strength", "3"], [("t2", 2), ("t4", 1)]),
        (lambda w: ["--min-strength", "1"], [("t1", 1), ("t2", 1), ("t2", 2), ("t4", 1)]),
        (
            lambda w: ["--submitted-from", "2024-03-02", "--submitted-to", "2024-03-03"],
            [("t2", 1), ("t2", 2), ("t3", 1)],
        ),
        (lambda w: ["--submitted-from", "2024-03-04"], [("t4", 1)]),
        (lambda w: ["--project", "Second project", "--kind", "docs"], [("t4", 1)]),
    ],
    ids=[
        "kind", "repository", "repository-unaccepted", "contractor", "endpoint", "endpoints",
        "min-strength-3", "min-strength-1", "date-range", "date-from", "project-and-kind",
    ],
)  # fmt: skip
def test_the_command_applies_each_filter(world, tmp_path, args, expected):
    records = _command(*args(world), out_path=tmp_path / "out.jsonl")
    names = {world[n].pk: n for n in ("t1", "t2", "t3", "t4", "t5", "t6")}
    assert [(names[r["task_id"]], r["turn"]) for r in records] == expected


def test_the_command_gives_the_same_bytes_twice_and_the_same_as_a_job(
    world, tmp_path, admin_user, export_storage
):
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    args = ["--format", "openai", "--kind", "feature", "--kind", "bug_fix"]
    _command(*args, out_path=first)
    _command(*args, out_path=second)
    assert first.read_bytes() == second.read_bytes()
    assert len(first.read_bytes().splitlines()) == 3
    job = export_job_execute(
        export_job_start(
            by=admin_user, fmt="openai", filters=ExportFilters(kinds=("bug_fix", "feature"))
        ).pk
    )
    assert _file_bytes(job) == first.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--endpoint", "nope-endpoint"], "No model endpoint named nope-endpoint."),
        (["--format", "criterion:nope"], "Unknown format criterion:nope"),
        (["--format", "parquet"], "format: Unknown format parquet"),
        (["--submitted-from", "2024-02-30"], "submitted_from: Enter a valid date."),
        (["--submitted-to", "yesterday"], "submitted_to: Enter a valid date."),
        (
            ["--submitted-from", "2024-03-02", "--submitted-to", "2024-03-01"],
            "The date range starts after it ends.",
        ),
        (["--contractor", "ghost"], "contractor: No user named 'ghost'."),
        (["--repository", "nobody/missing"], "repositories: Unknown repository: nobody/missing."),
        (["--kind", "haiku"], "kinds: Select a valid choice. haiku is not one"),
        (["--min-strength", "5"], "min_strength: Select a valid choice. 5 is not one"),
    ],
)
def test_bad_command_arguments_are_clear_errors_and_write_no_file(
    ready_repository, project, tmp_path, args, message
):
    out = tmp_path / "out.jsonl"
    with pytest.raises(CommandError) as raised:
        call_command("export_dataset", *args, "-o", str(out), stderr=io.StringIO())
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_command_keeps_the_old_file_and_leaves_no_partial_one(
    world, tmp_path, monkeypatch
):
    out = tmp_path / "out.jsonl"
    out.write_text("the previous export\n")
    real = exports._chunks

    def dies_midway(*args, **kwargs):
        yield next(real(*args, **kwargs))
        raise RuntimeError("connection lost")

    monkeypatch.setattr(exports, "_chunks", dies_midway)
    with pytest.raises(RuntimeError):
        call_command("export_dataset", "-o", str(out), stderr=io.StringIO())
    assert out.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_the_command_shows_progress_on_stderr_when_asked(world, tmp_path):
    err = io.StringIO()
    records = _command("--progress", out_path=tmp_path / "out.jsonl", stderr=err)
    assert len(records) == len(ACCEPTED_TURNS)
    shown = err.getvalue()
    assert f"[{'#' * 30}] {len(ACCEPTED_TURNS)}/{len(ACCEPTED_TURNS)} turns" in shown
    assert "Exported 5 lines (native)" in shown

    quiet = io.StringIO()
    _command("--no-progress", out_path=tmp_path / "quiet.jsonl", stderr=quiet)
    assert "turns" not in quiet.getvalue() and "Exported 5 lines (native)" in quiet.getvalue()


# --- streaming: chunks, the encoding and writing threads, failures ---------------------

EVERYTHING = ExportFilters(accepted_only=False)
FORMATS = ["native", "trl", "openai", "csv", "criterion:correctness"]


def _worker_threads() -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("map-ahead", "behind-writer")) and t.is_alive()
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_bytes_do_not_depend_on_the_chunk_size(world, fmt):
    whole = "".join(export_lines(fmt=fmt, filters=EVERYTHING))
    assert whole.count("\n") >= 3  # several records (CSV: a header and rows), so chunks differ
    for size in (1, 2, 3):
        assert "".join(export_lines(fmt=fmt, filters=EVERYTHING, chunk_size=size)) == whole


def test_each_native_line_is_the_record_native_records_gives(world):
    lines = "".join(export_lines(fmt="native", filters=EVERYTHING, chunk_size=2)).splitlines()
    records = list(native_records(EVERYTHING, chunk_size=3))
    assert len(lines) == len(records) == len(ALL_TURNS)
    assert [json.loads(line) for line in lines] == [json.loads(json.dumps(r)) for r in records]


def test_blocks_count_their_records_and_progress_counts_judged_turns(world):
    seen: list[int] = []
    blocks = list(
        exports.export_blocks(
            fmt="native", filters=ExportFilters(min_strength=3), progress=seen.append, chunk_size=1
        )
    )
    assert [b.records for b in blocks] == [b.data.count(b"\n") for b in blocks]
    kept = sum(b.records for b in blocks)
    assert 0 < kept < len(ACCEPTED_TURNS)  # min_strength leaves some out...
    assert seen == sorted(seen) and seen[-1] == len(ACCEPTED_TURNS)  # ...but all count as done


def test_a_failing_write_stops_the_reading_and_leaves_no_thread(world, monkeypatch):
    read: list[object] = []
    real = exports._chunks

    def one_task_at_a_time(filters, chunk_size):
        for rows in real(filters, 1):
            read.append(rows)
            yield rows

    monkeypatch.setattr(exports, "_chunks", one_task_at_a_time)

    class FullDisk(io.BytesIO):
        def write(self, data):
            if self.tell():
                raise OSError("No space left on device")
            return super().write(data)

    with pytest.raises(OSError, match="No space left"):
        write_export(FullDisk(), fmt="native", filters=EVERYTHING)
    # 6 tasks: the first block is written, the second fails; by the time that is known, the
    # reader is at most two chunks further on, and then stops.
    assert len(read) == 4
    assert _worker_threads() == []


def test_a_failing_encoding_reaches_the_caller_and_leaves_no_thread(world, monkeypatch):
    real = exports._chunk_records
    calls = []

    def fails_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("bad row")
        return real(*args, **kwargs)

    monkeypatch.setattr(exports, "_chunk_records", fails_on_the_third)
    got = []
    with pytest.raises(ValueError, match="bad row"):
        for block in exports.export_blocks(fmt="native", filters=EVERYTHING, chunk_size=1):
            got.append(block)
    assert len(got) == 2  # the blocks before the failure arrive, in order
    assert _worker_threads() == []


def test_an_endpoint_added_during_an_export_is_named_in_its_records(world):
    records = native_records(EVERYTHING, chunk_size=1)
    first = next(records)  # the first chunk is read, with the endpoints known then
    assert first["task_id"] == world["t1"].pk
    newcomer = ModelEndpointFactory(name="Late Lark", model_id="lark-1")
    Candidate.objects.filter(turn__task=world["t6"], slot="B").update(endpoint=newcomer)
    last = list(records)[-1]
    assert last["task_id"] == world["t6"].pk
    assert last["candidates"]["B"]["endpoint"] == "Late Lark"
    assert last["candidates"]["B"]["model_id"] == "lark-1"
