"""Who may call which REST endpoint: every API route x every persona.

Each case checks the status code and, for a write, that no row changed where it must not
(tasks, turns, candidates, judgements, reviews, claims, export jobs, repositories...).
Also here: token authentication, blinding of model identities in the JSON, mass
assignment, clear field errors and the throttle on endpoints that start model calls.

Anonymous calls and bad tokens get 401 with `WWW-Authenticate: Token` (TokenAuthentication
comes first in DEFAULT_AUTHENTICATION_CLASSES); 403 means signed in but not allowed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from marlin import roles
from repos.models import CatalogueImport, Repository
from reviews import export_job_services
from reviews.claim_services import review_claim
from reviews.comment_services import line_comment_add
from reviews.forms import ExportForm
from reviews.models import (
    Earning,
    ExportJob,
    JudgingTask,
    LineComment,
    Notification,
    Review,
    ReviewAudit,
    ReviewClaim,
)
from reviews.quality_audits import audit_take
from tasks import generation_services
from tasks.diffview import candidate_diff_view
from tasks.models import (
    Candidate,
    CheckRecipe,
    EvidenceRun,
    Judgement,
    ProjectEndpoint,
    Submission,
    Task,
    TaskEvent,
    Turn,
)
from tests.api_clients import api_client_for, api_token_for
from tests.factories import RepositoryFactory, UserFactory, pool_endpoints
from tests.tasks.helpers import create_task, decide, generate_all, submit, valid_scores

PERSONAS = ("anonymous", "owner", "other_contractor", "reviewer", "admin", "outsider")
# In the prompt of every task of the owner: must never reach anyone else.
SECRET = "private-7731-zq"
SECRET_PROMPT = f"Make div safe ({SECRET})."
JUSTIFICATION = "A handles the zero case; B crashes."


# ---------------------------------------------------------------------------------------
# The world: users up front, everything else built lazily, only for the cases that need it
# ---------------------------------------------------------------------------------------


class World:
    def __init__(self, request: pytest.FixtureRequest, *, project, users: dict, rex) -> None:
        self._request = request
        self.project = project
        self.users = users
        self.rex = rex  # a second reviewer, who decides the owner's bounced task
        self.export_files: list[tuple[Any, str]] = []
        for user in [*filter(None, users.values()), rex]:
            Notification.objects.create(user=user, message=f"Hello {user.username}")

    @property
    def owner(self):
        return self.users["owner"]

    @property
    def person(self):
        """Someone an admin looks up: the owner."""
        return self.users["owner"]

    @property
    def endpoint(self):
        return pool_endpoints(self.project)[0]

    @cached_property
    def failed_evidence_candidate(self) -> Candidate:
        """An awaiting task's candidate whose checks failed, with a recipe to run them again."""
        task = self.awaiting
        CheckRecipe.objects.get_or_create(
            repository=task.repository, project=None,
            defaults={"checks": [{"name": "unit tests", "kind": "status", "command": ["true"]}]},
        )  # fmt: skip
        candidate = task.turns.get().candidates.get(slot="A")
        base = EvidenceRun.objects.create(
            task=task, key="base", recipe={}, recipe_digest="d",
            status=EvidenceRun.Status.SUCCEEDED, results={},
        )  # fmt: skip
        EvidenceRun.objects.create(
            task=task, candidate=candidate, base_run=base, key="a", recipe={},
            recipe_digest="d", status=EvidenceRun.Status.FAILED, error="The setup failed.",
        )  # fmt: skip
        return candidate

    @cached_property
    def pool_row(self) -> ProjectEndpoint:
        return self.project.pool.order_by("pk").first()

    @cached_property
    def recipe(self) -> CheckRecipe:
        return CheckRecipe.objects.create(
            repository=RepositoryFactory(), checks=[{"name": "tests", "command": ["pytest"]}]
        )

    @cached_property
    def repository(self) -> Repository:
        """A really cloned repository (cloned only when a case needs it)."""
        return self._request.getfixturevalue("ready_repository")

    def new_task(self, contractor=None) -> Task:
        return create_task(
            contractor=contractor or self.owner,
            project=self.project,
            repository=self.repository,
            prompt=SECRET_PROMPT,
        )

    @cached_property
    def awaiting(self) -> Task:
        task = generate_all(self.new_task())
        assert task.status == Task.Status.AWAITING_PREFERENCE
        return task

    @cached_property
    def submitted(self) -> Task:
        return submit(generate_all(self.new_task()))

    @cached_property
    def held(self) -> Task:
        """Submitted and claimed by the reviewer persona."""
        task = submit(generate_all(self.new_task()))
        review_claim(task=task, reviewer=self.users["reviewer"])
        return task

    @cached_property
    def bounced(self) -> Task:
        task = submit(generate_all(self.new_task()))
        decide(task, reviewer=self.rex, decision="BOUNCE", feedback="Explain the zero case.")
        task.refresh_from_db()
        assert task.status == Task.Status.BOUNCED
        return task

    @cached_property
    def failed_candidate(self) -> Candidate:
        task = self.new_task()
        failing, other = Candidate.objects.filter(turn__task=task).order_by("slot")
        endpoint = failing.endpoint
        provider = endpoint.provider
        endpoint.provider = "unavailable"  # fails with "The model is not available right now."
        endpoint.save()
        generation_services.candidate_generate(candidate_id=other.pk)
        generation_services.candidate_generate(candidate_id=failing.pk)
        endpoint.provider = provider
        endpoint.save()
        failing.refresh_from_db()
        task.refresh_from_db()
        assert failing.status == Candidate.Status.FAILED
        assert task.status == Task.Status.GENERATION_FAILED
        return failing

    @cached_property
    def awaiting_candidate(self) -> Candidate:
        return self.awaiting.turns.get().candidates.get(slot="A")

    @cached_property
    def submitted_candidate(self) -> Candidate:
        return self.submitted.turns.get().candidates.get(slot="A")

    @cached_property
    def owner_comment(self) -> LineComment:
        """The owner's comment on a task of its own that awaits the judgement."""
        candidate = generate_all(self.new_task()).turns.get().candidates.get(slot="A")
        return line_comment_add(candidate=candidate, by=self.owner, **_a_line_of(candidate))

    @cached_property
    def identical_candidate(self) -> Candidate:
        """Slot B of an awaiting task whose two candidates made the same change."""
        task = generate_all(self.new_task())
        a, b = Candidate.objects.filter(turn__task=task).order_by("slot")
        Candidate.objects.filter(pk=b.pk).update(diff=a.diff, explanation=a.explanation)
        Turn.objects.filter(pk=a.turn_id).update(has_identical_candidates=True)
        return b

    @cached_property
    def succeeded_candidate(self) -> Candidate:
        return Candidate.objects.filter(turn__task=self.awaiting).order_by("slot").first()

    @cached_property
    def uncloned(self) -> Repository:
        return RepositoryFactory(full_name="octo/uncloned")

    @cached_property
    def export_job(self) -> ExportJob:
        """A finished export (run in-process), with its file in the exports storage."""
        form = ExportForm({"format": "native", "include_unaccepted": "on"})
        assert form.is_valid(), form.errors
        job = export_job_services.export_job_start(
            by=self.users["admin"], fmt="native", filters=form.filters()
        )
        job = export_job_services.export_job_execute(job.pk)
        assert job is not None and job.status == ExportJob.Status.SUCCEEDED
        self.export_files.append((job.file.storage, job.file.name))
        return job

    def _accepted_with_overlap(self, contractor) -> Task:
        self.project.overlap_percent = 100
        self.project.save()
        task = submit(generate_all(self.new_task(contractor)))
        decide(task, reviewer=self.rex)
        return task

    @cached_property
    def judging_open(self) -> list[JudgingTask]:
        """An open judging task on a turn of each contractor's: each may take the other's."""
        for contractor in (self.owner, self.users["other_contractor"]):
            self._accepted_with_overlap(contractor)
        return list(JudgingTask.objects.filter(status=JudgingTask.Status.OPEN))

    @cached_property
    def judging_held(self) -> JudgingTask:
        """The owner's accepted turn, held for judging by the other contractor."""
        task = self._accepted_with_overlap(self.owner)
        judging_task = JudgingTask.objects.get(turn__task=task)
        judging_task.take(by=self.users["other_contractor"])
        return judging_task

    @cached_property
    def audit(self) -> ReviewAudit:
        """The open audit of one of the owner's tasks that rex accepted."""
        self.project.audit_percent = 100
        self.project.save(update_fields=["audit_percent"])
        task = submit(generate_all(self.new_task()))
        decide(task, reviewer=self.rex)
        return ReviewAudit.objects.get(review__task=task)

    @cached_property
    def taken_audit(self) -> ReviewAudit:
        return audit_take(audit=self.audit, by=self.users["reviewer"])

    @cached_property
    def catalogue_import(self) -> CatalogueImport:
        """A catalogue import queued by the admin and not yet run."""
        return CatalogueImport.objects.create(
            requested_by=self.users["admin"], filename="r.json", size_bytes=10
        )


@pytest.fixture
def world(request, project, contractor, other_contractor, reviewer, admin_user, outsider):
    users = {
        "anonymous": None,
        "owner": contractor,
        "other_contractor": other_contractor,
        "reviewer": reviewer,
        "admin": admin_user,
        "outsider": outsider,
    }
    rex = UserFactory(username="rex", role=roles.REVIEWER)
    built = World(request, project=project, users=users, rex=rex)
    yield built
    for storage, name in built.export_files:
        storage.delete(name)


@pytest.fixture
def fresh_throttle(settings) -> Iterator[None]:
    settings.MARLIN_API_MODEL_CALLS_RATE = "2/hour"
    cache.clear()
    yield
    cache.clear()


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user=user)
    return client


def snapshot() -> dict[str, set]:
    """Every row an API call can write, in a comparable form."""
    return {
        "tasks": set(
            Task.objects.values_list(
                "pk", "status", "round", "contractor_id", "active_seconds", "title"
            )
        ),
        "turns": set(
            Turn.objects.values_list("pk", "task_id", "number", "has_identical_candidates")
        ),
        "candidates": set(Candidate.objects.values_list("pk", "status", "attempts", "error")),
        "evidence_runs": set(EvidenceRun.objects.values_list("pk", "status", "key", "error")),
        "judgements": set(
            Judgement.objects.values_list(
                "pk", "turn_id", "round", "preference", "justification", "updated_at"
            )
        ),
        "submissions": set(Submission.objects.values_list("pk", "task_id", "round")),
        "events": set(TaskEvent.objects.values_list("pk", "task_id", "kind", "to_status")),
        "reviews": set(
            Review.objects.values_list(
                "pk", "task_id", "round", "reviewer_id", "decision", "rejects_task"
            )
        ),
        "claims": set(
            ReviewClaim.objects.values_list("pk", "task_id", "reviewer_id", "ended_at", "ending")
        ),
        "earnings": set(Earning.objects.values_list("pk", "task_id", "amount")),
        "line_comments": set(
            LineComment.objects.values_list("pk", "candidate_id", "author_id", "text")
        ),
        "notifications": set(Notification.objects.values_list("pk", "user_id", "read_at")),
        "audits": set(
            ReviewAudit.objects.values_list("pk", "status", "auditor_id", "note", "decided_at")
        ),
        "judging_tasks": set(
            JudgingTask.objects.values_list("pk", "status", "contractor_id", "preference")
        ),
        "exports": set(ExportJob.objects.values_list("pk", "status", "requested_by_id")),
        "catalogue_imports": set(
            CatalogueImport.objects.values_list("pk", "status", "requested_by_id")
        ),
        "repositories": set(
            Repository.objects.values_list(
                "pk", "full_name", "clone_status", "task_count", "is_enabled", "max_open_tasks"
            )
        ),
    }


def assert_only_changed(before: dict, after: dict, allowed: tuple[str, ...]) -> None:
    for key in before:
        if key not in allowed:
            assert after[key] == before[key], f"{key} changed"


def results(response) -> list[dict]:
    data = response.json()
    return data["results"] if isinstance(data, dict) and "results" in data else data


def gh(full_name: str) -> dict:
    """A repository object as the GitHub REST API returns it."""
    return {
        "full_name": full_name,
        "html_url": f"https://github.com/{full_name}",
        "clone_url": f"https://github.com/{full_name}.git",
        "default_branch": "main",
        "language": "Python",
        "stargazers_count": 1200,
        "description": "Web framework",
        "topics": ["web"],
        "archived": False,
    }


# ---------------------------------------------------------------------------------------
# The matrix: every API endpoint x every persona
# ---------------------------------------------------------------------------------------


def task_create_data(w: World) -> dict:
    return {
        "project": w.project.pk,
        "repository": w.repository.pk,
        "ref": "",
        "title": "Handle zero",
        "kind": "bug_fix",
        "prompt": "Return None when dividing by zero.",
    }


def judgement_data(w: World) -> dict:
    return {"preference": -2, "scores": valid_scores(w.project), "justification": JUSTIFICATION}


# What each successful call must have done (its target is reloaded from the database).


def _repositories_listed(w, user, response):
    assert w.repository.pk in [r["id"] for r in results(response)]


def _repository_shown(w, user, response):
    assert response.json()["full_name"] == w.repository.full_name


def _clone_queued(w, user, response):
    assert response.json()["clone_status"] == "QUEUED"
    assert Repository.objects.get(pk=w.uncloned.pk).clone_status == "QUEUED"


def _refs_listed(w, user, response):
    assert "main" in response.json()["branches"]


def _file_shown(w, user, response):
    assert "def div(a, b):" in response.json()["content"]


def _import_queued(w, user, response):
    job = CatalogueImport.objects.get(pk=response.json()["id"])
    assert job.requested_by == user and job.status == CatalogueImport.Status.QUEUED


def _import_shown(w, user, response):
    assert response.json()["id"] == w.catalogue_import.pk


def _projects_listed(w, user, response):
    assert [p["name"] for p in results(response)] == [w.project.name]


def _own_tasks_listed(w, user, response):
    ids = [t["id"] for t in results(response)]
    assert (w.awaiting.pk in ids) == (user == w.owner)
    assert set(ids) == set(Task.objects.filter(contractor=user).values_list("pk", flat=True))


def _task_created(w, user, response):
    task = Task.objects.get(pk=response.json()["id"])
    assert task.contractor == user and task.status == Task.Status.GENERATING


def _task_shown(w, user, response):
    data = response.json()
    assert data["id"] == w.awaiting.pk and data["turns"][0]["prompt"] == SECRET_PROMPT


def _submitted(w, user, response):
    assert Task.objects.get(pk=w.awaiting.pk).status == Task.Status.SUBMITTED


def _followed_up(w, user, response):
    assert response.json()["number"] == 2
    assert Turn.objects.filter(task=w.awaiting).count() == 2
    assert Candidate.objects.filter(turn__task=w.awaiting).count() == 4
    assert Task.objects.get(pk=w.awaiting.pk).status == Task.Status.GENERATING


def _revised(w, user, response):
    task = Task.objects.get(pk=w.bounced.pk)
    assert (task.status, task.round) == (Task.Status.AWAITING_PREFERENCE, 2)


def _audits_listed(w, user, response):
    assert [a["id"] for a in results(response)] == [w.audit.pk]


def _audit_taken(w, user, response):
    audit = ReviewAudit.objects.get(pk=w.audit.pk)
    assert (audit.status, audit.auditor) == ("TAKEN", user)


def _audit_decided(w, user, response):
    audit = ReviewAudit.objects.get(pk=w.taken_audit.pk)
    assert (audit.status, audit.note) == ("OVERTURNED", "No test.")


def _own_judging_listed(w, user, response):
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == list(JudgingTask.objects.filter(contractor=user).values_list("pk", flat=True))
    assert (w.judging_held.pk in ids) == (user == w.users["other_contractor"])


def _judging_taken(w, user, response):
    taken = JudgingTask.objects.get(pk=response.json()["id"])
    assert taken.contractor == user and taken.turn.task.contractor != user


def _judging_shown(w, user, response):
    body = response.content.decode()
    assert response.json()["prompt"] == SECRET_PROMPT  # the pair is judged as it was asked
    assert JUSTIFICATION not in body and w.owner.username not in body


def _judging_submitted(w, user, response):
    judging_task = JudgingTask.objects.get(pk=w.judging_held.pk)
    assert (judging_task.status, judging_task.preference) == (JudgingTask.Status.SUBMITTED, -2)


def _regenerated(w, user, response):
    candidate = Candidate.objects.get(pk=w.identical_candidate.pk)
    assert candidate.status == Candidate.Status.QUEUED and candidate.diff == ""
    assert candidate.turn.task.status == Task.Status.GENERATING
    assert candidate.turn.has_identical_candidates is None


def _retried(w, user, response):
    candidate = Candidate.objects.get(pk=w.failed_candidate.pk)
    assert candidate.status == Candidate.Status.QUEUED
    assert candidate.turn.task.status == Task.Status.GENERATING


def _queue_listed(w, user, response):
    assert [t["id"] for t in results(response)] == [w.submitted.pk]


def _review_task_shown(w, user, response):
    assert response.json()["id"] == w.submitted.pk


def _claimed(w, user, response):
    claim = ReviewClaim.objects.get(task=w.submitted, ended_at__isnull=True)
    assert claim.reviewer == user


def _released(w, user, response):
    assert not ReviewClaim.objects.filter(task=w.held, ended_at__isnull=True).exists()
    assert ReviewClaim.objects.get(task=w.held).ending == ReviewClaim.Ending.RELEASED


def _decided(w, user, response):
    review = Review.objects.get(task=w.held)
    assert review.reviewer == user and review.decision == Review.Decision.ACCEPT
    assert Task.objects.get(pk=w.held.pk).status == Task.Status.ACCEPTED


def _own_earnings(w, user, response):
    ids = [t["id"] for t in response.json()["tasks"]]
    assert (w.awaiting.pk in ids) == (user == w.owner)


def _period_shown(w, user, response):
    assert {"start", "end"} <= set(response.json())


def _own_notifications(w, user, response):
    assert [n["message"] for n in results(response)] == [f"Hello {user.username}"]


def _own_marked_read(w, user, response):
    assert response.json() == {"marked_read": 1}
    assert not Notification.objects.filter(user=user, read_at__isnull=True).exists()
    # Everybody else's are still unread.
    assert Notification.objects.exclude(user=user).filter(read_at__isnull=False).count() == 0


def _exports_listed(w, user, response):
    assert [j["id"] for j in results(response)] == [w.export_job.pk]


def _export_started(w, user, response):
    job = ExportJob.objects.get(pk=response.json()["id"])
    assert job.requested_by == user and job.status == ExportJob.Status.QUEUED


def _export_shown(w, user, response):
    data = response.json()
    assert data["id"] == w.export_job.pk
    assert data["download_url"] == reverse("api-export-download", args=[w.export_job.pk])


def _export_downloaded(w, user, response):
    content = b"".join(response.streaming_content)
    response.close()
    assert "attachment" in response["Content-Disposition"]
    assert hashlib.sha256(content).hexdigest() == w.export_job.sha256


def _dashboard_shown(w, user, response):
    assert response.json()["judged_turns"] == 0


def _schema_served(w, user, response):
    assert b"/api/tasks/" in response.content


def _a_line_of(candidate: Candidate) -> dict:
    """A line the candidate's diff shows on its new side, with a comment's text."""
    file = candidate_diff_view(candidate).files[0]
    line = next(d.new_no for h in file.hunks for d in h.lines if d.new_no)
    return {"path": file.result_path, "side": "new", "line": line, "text": "Why this line?"}


def _comment_added(w, user, response):
    comment = LineComment.objects.get(pk=response.json()["id"])
    assert comment.author == user and comment.candidate == w.awaiting_candidate


def _comments_listed(w, user, response):
    assert response.json() == []  # nobody commented on the submitted task


@dataclass(frozen=True)
class Call:
    url_name: str
    method: str = "get"
    target: str | None = None  # the World attribute whose pk goes in the URL
    needs: tuple[str, ...] = ()  # World attributes to build before the call
    data: Callable[[World], dict] | None = None
    fmt: str = "json"
    changes: tuple[str, ...] = ()  # what a successful call may change
    effect: Callable | None = None  # (world, user, response): what a success did

    def send(self, client: APIClient, world: World, data: dict):
        args = [getattr(world, self.target).pk] if self.target else []
        url = reverse(self.url_name, args=args)
        if self.method == "get":
            return client.get(url, data)
        return getattr(client, self.method)(url, data, format=self.fmt)


TASK_WRITES = ("tasks", "turns", "candidates", "events", "repositories")
ALL = (200,) * 5  # every signed-in persona
ADMIN_ONLY = (401, 403, 403, 403, 200, 403)
# fmt: off
MATRIX: dict[str, tuple[Call, tuple]] = {
    #                                                                        anon owner other rev  admin outsider
    "repositories": (Call("api-repositories", needs=("repository",),
                          effect=_repositories_listed),                     (401, *ALL)),
    "repository": (Call("api-repository", target="repository",
                        effect=_repository_shown),                          (401, *ALL)),
    "clone": (Call("api-repository-clone", "post", target="uncloned",
                   changes=("repositories",), effect=_clone_queued),         (401, 202, 202, 403, 202, 403)),
    "refs": (Call("api-repository-refs", target="repository",
                  effect=_refs_listed),                                     (401, *ALL)),
    "tree": (Call("api-repository-tree", target="repository",
                  data=lambda w: {"path": "calc/ops.py"}, effect=_file_shown),  (401, *ALL)),
    "import": (Call("api-repos-import", "post", fmt="multipart",
                    data=lambda w: {"file": SimpleUploadedFile(
                        "r.json", json.dumps([gh("pallets/flask")]).encode())},
                    changes=("catalogue_imports",), effect=_import_queued),   (401, 403, 403, 403, 202, 403)),
    "import_job": (Call("api-repos-import-job", target="catalogue_import",
                        effect=_import_shown),                              (401, 403, 403, 403, 200, 403)),
    "projects": (Call("api-projects", effect=_projects_listed),             (401, 200, 200, 403, 403, 403)),
    "tasks": (Call("api-tasks", needs=("awaiting",),
                   effect=_own_tasks_listed),                               (401, 200, 200, 403, 403, 403)),
    "task_create": (Call("api-tasks", "post", data=task_create_data,
                         changes=TASK_WRITES, effect=_task_created),        (401, 201, 201, 403, 403, 403)),
    "task": (Call("api-task", target="awaiting", effect=_task_shown),       (401, 200, 404, 403, 403, 403)),
    "submit": (Call("api-task-submit", "post", target="awaiting", data=judgement_data,
                    changes=("tasks", "judgements", "submissions", "events"),
                    effect=_submitted),                                     (401, 200, 404, 403, 403, 403)),
    "follow_up": (Call("api-task-follow-up", "post", target="awaiting",
                       data=lambda w: {**judgement_data(w), "prompt": "Now add a test."},
                       changes=("tasks", "turns", "candidates", "judgements", "events"),
                       effect=_followed_up),                                (401, 201, 404, 403, 403, 403)),
    "revise": (Call("api-task-revise", "post", target="bounced",
                    changes=("tasks", "judgements", "events"), effect=_revised),  (401, 200, 404, 403, 403, 403)),
    "retry": (Call("api-candidate-retry", "post", target="failed_candidate",
                   changes=("candidates", "tasks", "events"), effect=_retried),  (401, 202, 404, 403, 403, 403)),
    "evidence_retry": (Call("api-candidate-evidence-retry", "post",
                            target="failed_evidence_candidate", changes=("evidence_runs",)),
                                                                       (401, 202, 404, 403, 403, 403)),
    "regenerate": (Call("api-candidate-regenerate", "post", target="identical_candidate",
                        changes=("candidates", "tasks", "turns", "events"),
                        effect=_regenerated),                          (401, 202, 404, 403, 403, 403)),
    "queue": (Call("api-review-queue", needs=("submitted",),
                   effect=_queue_listed),                                   (401, 403, 403, 200, 403, 403)),
    "review_task": (Call("api-review-task", target="submitted",
                         effect=_review_task_shown),                        (401, 403, 403, 200, 200, 403)),
    "claim": (Call("api-review-claim", "post", target="submitted",
                   changes=("claims", "events"), effect=_claimed),           (401, 403, 403, 201, 403, 403)),
    "release": (Call("api-review-release", "post", target="held",
                     changes=("claims", "events"), effect=_released),        (401, 403, 403, 204, 403, 403)),
    "decide": (Call("api-review-decide", "post", target="held",
                    data=lambda w: {"decision": "ACCEPT"},
                    changes=("reviews", "tasks", "claims", "events", "earnings", "notifications"),
                    effect=_decided),                                       (401, 403, 403, 201, 403, 403)),
    # A second reviewer audits an acceptance: never the reviewer audited, never a contractor.
    "audits": (Call("api-audits", needs=("audit",), effect=_audits_listed),  (401, 403, 403, 200, 403, 403)),
    "audit_take": (Call("api-audit-take", "post", target="audit", changes=("audits",),
                        effect=_audit_taken),                                (401, 403, 403, 200, 403, 403)),
    "audit_decide": (Call("api-audit-decide", "post", target="taken_audit",
                          data=lambda w: {"overturn": True, "note": "No test."},
                          changes=("audits",), effect=_audit_decided),       (401, 403, 403, 200, 403, 403)),
    "earnings": (Call("api-earnings", needs=("awaiting",),
                      effect=_own_earnings),                                (401, 200, 200, 403, 403, 403)),
    "payouts": (Call("api-payouts", effect=_period_shown),                  (401, 403, 403, 403, 200, 403)),
    "reviewer_metrics": (Call("api-reviewer-metrics", effect=_period_shown),  (401, 403, 403, 403, 200, 403)),
    "notifications": (Call("api-notifications",
                           effect=_own_notifications),                      (401, *ALL)),
    "notifications_read": (Call("api-notifications-read", "post",
                                changes=("notifications",),
                                effect=_own_marked_read),                   (401, *ALL)),
    "dashboard": (Call("api-dashboard", effect=_dashboard_shown),           (401, 403, 403, 403, 200, 403)),
    "exports": (Call("api-exports", needs=("export_job",),
                     effect=_exports_listed),                               (401, 403, 403, 403, 200, 403)),
    "export_start": (Call("api-exports", "post", data=lambda w: {"format": "native"},
                          changes=("exports",), effect=_export_started),    (401, 403, 403, 403, 202, 403)),
    "export": (Call("api-export", target="export_job",
                    effect=_export_shown),                                  (401, 403, 403, 403, 200, 403)),
    "export_download": (Call("api-export-download", target="export_job",
                             effect=_export_downloaded),                    (401, 403, 403, 403, 200, 403)),
    # Admins manage endpoints, projects, people and the catalogue (Django model permissions).
    "admin_endpoints": (Call("api-admin-endpoint-list"),                   ADMIN_ONLY),
    "admin_endpoint": (Call("api-admin-endpoint-detail", target="endpoint"),  ADMIN_ONLY),
    "admin_projects": (Call("api-admin-project-list"),                     ADMIN_ONLY),
    "admin_project": (Call("api-admin-project-detail", target="project"),  ADMIN_ONLY),
    "admin_pool": (Call("api-admin-project-endpoint-list"),               ADMIN_ONLY),
    "admin_pool_row": (Call("api-admin-project-endpoint-detail", target="pool_row"), ADMIN_ONLY),
    "admin_recipes": (Call("api-admin-check-recipe-list"),                 ADMIN_ONLY),
    "admin_recipe": (Call("api-admin-check-recipe-detail", target="recipe"), ADMIN_ONLY),
    "admin_users": (Call("api-admin-user-list"),                           ADMIN_ONLY),
    "admin_user": (Call("api-admin-user-detail", target="person"),         ADMIN_ONLY),
    "admin_repository": (Call("api-admin-repository", "patch", target="repository",
                              data=lambda w: {"is_enabled": False, "max_open_tasks": 3},
                              changes=("repositories",)),                   ADMIN_ONLY),
    # The schema lists every route, the admin ones too: for signed-in users only.
    "line_comments": (Call("api-line-comments", target="submitted_candidate",
                           effect=_comments_listed),                        (401, 200, 404, 200, 200, 404)),
    "line_comment_add": (Call("api-line-comments", "post", target="awaiting_candidate",
                              data=lambda w: _a_line_of(w.awaiting_candidate),
                              changes=("line_comments",), effect=_comment_added),
                                                                            (401, 201, 404, 404, 404, 404)),
    "line_comment_delete": (Call("api-line-comment", "delete", target="owner_comment",
                                 changes=("line_comments",)),               (401, 204, 404, 404, 404, 404)),
    # A second contractor judges an accepted turn: never their own, never seen by the first.
    "judging_tasks": (Call("api-judging-tasks", needs=("judging_held",),
                           effect=_own_judging_listed),                     (401, 200, 200, 403, 403, 403)),
    "judging_next": (Call("api-judging-task-next", "post", needs=("judging_open",),
                          changes=("judging_tasks",), effect=_judging_taken),
                                                                            (401, 200, 200, 403, 403, 403)),
    "judging_task": (Call("api-judging-task", target="judging_held",
                          effect=_judging_shown),                           (401, 404, 200, 403, 403, 403)),
    "judging_submit": (Call("api-judging-task-submit", "post", target="judging_held",
                            data=judgement_data, changes=("judging_tasks",),
                            effect=_judging_submitted),                     (401, 404, 200, 403, 403, 403)),
    "schema": (Call("api-schema", effect=_schema_served),                   (401, *ALL)),
}
# fmt: on


def test_the_matrix_covers_every_api_route():
    from django.urls import get_resolver

    api_names = {
        name
        for name in get_resolver().reverse_dict
        if isinstance(name, str) and name.startswith("api-")
    }
    # The Swagger and Redoc pages only render the schema in a browser.
    assert api_names - {"api-docs", "api-redoc"} == {c.url_name for c, _ in MATRIX.values()}
    assert {(c.url_name, c.method) for c, _ in MATRIX.values()} >= {
        ("api-tasks", "get"),
        ("api-tasks", "post"),
        ("api-exports", "get"),
        ("api-exports", "post"),
    }


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("case", list(MATRIX))
def test_every_endpoint_for_every_persona(world, case, persona):
    call, statuses = MATRIX[case]
    expected = statuses[PERSONAS.index(persona)]
    user = world.users[persona]
    for name in (*call.needs, *([call.target] if call.target else [])):
        getattr(world, name)
    data = call.data(world) if call.data else {}
    before = snapshot()

    response = call.send(client_for(user), world, data)

    after = snapshot()
    assert response.status_code == expected, getattr(response, "content", b"")[:500]
    if expected < 300:
        assert_only_changed(before, after, call.changes)
        if call.method != "get":
            assert any(after[key] != before[key] for key in call.changes), "nothing was written"
        if call.effect:
            call.effect(world, user, response)
    else:
        assert after == before
        # Refused, and not told anything about the owner's task either.
        assert SECRET.encode() not in response.content
        assert b"Guard division" not in response.content


# ---------------------------------------------------------------------------------------
# The reviewer who is also a contractor, a second reviewer, and errors mapped to 4xx
# ---------------------------------------------------------------------------------------


@pytest.fixture
def sam(db):
    """A reviewer who also works as a contractor."""
    sam = UserFactory(username="sam", role=roles.REVIEWER)
    sam.groups.add(Group.objects.get(name=roles.CONTRACTOR))
    return sam


@pytest.mark.parametrize(
    ("url_name", "method"),
    [
        ("api-review-task", "get"),
        ("api-review-claim", "post"),
        ("api-review-release", "post"),
        ("api-review-decide", "post"),
    ],
)
def test_a_reviewer_gets_403_on_their_own_task(world, sam, url_name, method):
    task = submit(generate_all(world.new_task(contractor=sam)))
    # Held by another reviewer, so only the own-task rule can explain a 403 (not a 409).
    review_claim(task=task, reviewer=world.users["reviewer"])
    client = client_for(sam)
    before = snapshot()
    url = reverse(url_name, args=[task.pk])
    if method == "get":
        response = client.get(url)
    else:
        response = client.post(url, {"decision": "ACCEPT"}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "You cannot review your own task."}
    assert snapshot() == before


def test_the_queue_never_lists_the_reviewers_own_task(world, sam):
    own = submit(generate_all(world.new_task(contractor=sam)))
    others = world.submitted
    response = client_for(sam).get(reverse("api-review-queue"))
    assert response.status_code == 200
    ids = [t["id"] for t in results(response)]
    assert own.pk not in ids
    assert others.pk in ids


@pytest.mark.parametrize(
    ("url_name", "data"),
    [
        ("api-review-claim", {}),
        ("api-review-release", {}),
        ("api-review-decide", {"decision": "ACCEPT"}),
    ],
)
def test_a_second_reviewer_gets_409_on_a_task_held_by_another(world, url_name, data):
    task = world.held
    before = snapshot()
    response = client_for(world.rex).post(reverse(url_name, args=[task.pk]), data, format="json")
    assert response.status_code == 409
    assert "another reviewer" in response.json()["detail"]
    assert snapshot() == before


def test_deciding_without_a_claim_is_a_409(world):
    task = world.submitted
    before = snapshot()
    response = client_for(world.users["reviewer"]).post(
        reverse("api-review-decide", args=[task.pk]), {"decision": "ACCEPT"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["detail"].startswith("Claim this task before deciding it")
    assert snapshot() == before


@pytest.mark.parametrize("persona", ["reviewer", "admin"])
def test_a_task_not_yet_submitted_is_404_for_review(world, persona):
    response = client_for(world.users[persona]).get(
        reverse("api-review-task", args=[world.awaiting.pk])
    )
    assert response.status_code == 404
    assert SECRET.encode() not in response.content


def test_retrying_a_candidate_that_succeeded_is_an_invalid_transition_409(world):
    candidate = world.succeeded_candidate
    before = snapshot()
    response = client_for(world.owner).post(reverse("api-candidate-retry", args=[candidate.pk]))
    assert response.status_code == 409
    assert "Cannot move" in response.json()["detail"]
    assert snapshot() == before


def test_revising_a_task_under_review_is_an_invalid_transition_409(world):
    task = world.submitted
    before = snapshot()
    response = client_for(world.owner).post(reverse("api-task-revise", args=[task.pk]))
    assert response.status_code == 409
    assert snapshot() == before


def test_a_follow_up_of_a_submitted_task_is_a_400(world):
    task = world.submitted
    before = snapshot()
    response = client_for(world.owner).post(
        reverse("api-task-follow-up", args=[task.pk]),
        {**judgement_data(world), "prompt": "More."},
        format="json",
    )
    assert response.status_code == 400
    assert "cannot be continued" in response.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("url_name", ["api-task", "api-task-submit", "api-candidate-retry"])
def test_someone_elses_task_and_a_missing_one_look_the_same(world, url_name):
    """404 either way, with the same body: no way to tell that the other one exists."""
    target = world.succeeded_candidate if url_name == "api-candidate-retry" else world.awaiting
    client = client_for(world.users["other_contractor"])
    method = client.get if url_name == "api-task" else client.post
    before = snapshot()
    theirs = method(reverse(url_name, args=[target.pk]))
    missing = method(reverse(url_name, args=[target.pk + 10_000]))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert snapshot() == before


def test_contractors_and_reviewers_stay_anonymous_to_each_other(world):
    """The contractor sees "a reviewer", the reviewer sees "the contractor"."""
    bounced = world.bounced  # bounced by rex
    mine = client_for(world.owner).get(reverse("api-task", args=[bounced.pk]))
    assert mine.status_code == 200
    assert mine.json()["feedback"]["feedback"] == "Explain the zero case."
    assert b"rex" not in mine.content
    assert "a reviewer" in {e["actor"] for e in mine.json()["timeline"]}

    theirs = client_for(world.users["reviewer"]).get(reverse("api-review-task", args=[bounced.pk]))
    assert theirs.status_code == 200
    assert world.owner.username.encode() not in theirs.content
    assert "the contractor" in {e["actor"] for e in theirs.json()["timeline"]}


# ---------------------------------------------------------------------------------------
# Token authentication
# ---------------------------------------------------------------------------------------


def test_a_real_token_authenticates_as_its_user(world):
    task = world.awaiting
    client = api_client_for(world.owner)
    response = client.get(reverse("api-tasks"))
    assert response.status_code == 200
    assert [t["id"] for t in results(response)] == [task.pk]
    # And it writes as that user.
    response = client.post(reverse("api-tasks"), task_create_data(world), format="json")
    assert response.status_code == 201
    assert Task.objects.get(pk=response.json()["id"]).contractor == world.owner


def test_a_reviewers_token_is_refused_on_contractor_endpoints(world):
    client = api_client_for(world.users["reviewer"])
    data = task_create_data(world)
    before = snapshot()
    response = client.post(reverse("api-tasks"), data, format="json")
    assert response.status_code == 403
    assert snapshot() == before
    assert client.get(reverse("api-review-queue")).status_code == 200


@pytest.mark.parametrize("header", ["Token not-a-real-key", "Token ", "Bearer abc"])
def test_a_bad_token_is_refused_and_writes_nothing(world, header):
    api_token_for(world.owner)  # a real token exists; the header's is not it
    data = task_create_data(world)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    before = snapshot()
    response = client.post(reverse("api-tasks"), data, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert snapshot() == before
    expected = {
        "Token not-a-real-key": "Invalid token.",
        "Token ": "Invalid token header. No credentials provided.",
        # Not a Token header at all: TokenAuthentication ignores it, so no one signed in.
        "Bearer abc": "Authentication credentials were not provided.",
    }[header]
    assert response.json() == {"detail": expected}
    assert client.get(reverse("api-tasks")).status_code == 401


def test_anonymous_calls_are_told_to_authenticate(world):
    response = APIClient().get(reverse("api-tasks"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


# ---------------------------------------------------------------------------------------
# Blinding: no endpoint name or model id in what contractors and reviewers read
# ---------------------------------------------------------------------------------------


ENDPOINT_NAMES = {"a": ("Kestrel Prime", "kx-0917-preview"), "b": ("Heron Ultra", "hu-2-large")}
ENDPOINT_KEYS = {
    "endpoint", "endpoint_a", "endpoint_b", "endpoint_id", "model_id", "provider",
    "first_endpoint", "second_endpoint", "pair", "pool",
}  # fmt: skip


@pytest.fixture
def named_endpoints(project):
    for slot, endpoint in (("a", pool_endpoints(project)[0]), ("b", pool_endpoints(project)[1])):
        endpoint.name, endpoint.model_id = ENDPOINT_NAMES[slot]
        endpoint.save()
    return [n for pair in ENDPOINT_NAMES.values() for n in pair]


def all_keys(data) -> set[str]:
    if isinstance(data, dict):
        return set(data) | {k for v in data.values() for k in all_keys(v)}
    if isinstance(data, list):
        return {k for v in data for k in all_keys(v)}
    return set()


def name_the_models(task: Task) -> None:
    """Each candidate names itself in its explanation and its rival in its error."""
    project = task.project
    for candidate in Candidate.objects.filter(turn__task=task).select_related("endpoint"):
        own = candidate.endpoint
        rival = (
            pool_endpoints(project)[1]
            if own.pk == pool_endpoints(project)[0].pk
            else pool_endpoints(project)[0]
        )
        Candidate.objects.filter(pk=candidate.pk).update(
            explanation=f"I am {own.name} ({own.model_id}), made by Anthropic",
            error=f"{rival.name} ({rival.model_id}) timed out",
        )


def assert_blinded(response, names: list[str]) -> None:
    assert response.status_code == 200
    body = response.content.decode().lower()
    for name in names:
        assert name.lower() not in body, name
    data = response.json()
    assert not all_keys(data) & ENDPOINT_KEYS
    candidates = [c for turn in data["turns"] for c in turn["candidates"]]
    assert len(candidates) == 2
    for candidate in candidates:
        assert candidate["explanation"] == "I am [model] ([model]), made by [model]"
        assert candidate["error"] == "[model] ([model]) timed out"


def test_the_task_json_never_names_a_model(world, named_endpoints):
    task = world.awaiting
    name_the_models(task)
    response = client_for(world.owner).get(reverse("api-task", args=[task.pk]))
    assert_blinded(response, named_endpoints)


def test_the_review_json_never_names_a_model(world, named_endpoints):
    task = submit(world.awaiting)
    name_the_models(task)
    response = client_for(world.users["reviewer"]).get(reverse("api-review-task", args=[task.pk]))
    assert_blinded(response, named_endpoints)


def test_the_apply_error_never_names_a_model(world, named_endpoints):
    task = world.awaiting
    for candidate in Candidate.objects.filter(turn__task=task).select_related("endpoint"):
        Candidate.objects.filter(pk=candidate.pk).update(
            applies_cleanly=False,
            apply_error=f"patch by {candidate.endpoint.name} does not apply",
        )
    response = client_for(world.owner).get(reverse("api-task", args=[task.pk]))
    assert response.status_code == 200
    body = response.content.decode().lower()
    for name in named_endpoints:
        assert name.lower() not in body, name


def test_projects_never_expose_their_endpoints(world, named_endpoints):
    response = client_for(world.owner).get(reverse("api-projects"))
    assert response.status_code == 200
    (project,) = results(response)
    assert set(project) == {
        "id",
        "name",
        "guidelines",
        "rubric_axes",
        "min_turns",
        "max_turns",
        "min_justification_chars",
        "pay_per_task",
        "hourly_rate_cap",
    }
    body = response.content.decode().lower()
    for name in named_endpoints:
        assert name.lower() not in body, name


# ---------------------------------------------------------------------------------------
# Mass assignment: extra keys are ignored, never written
# ---------------------------------------------------------------------------------------


def test_creating_a_task_ignores_extra_keys(world):
    data = {
        **task_create_data(world),
        "status": "ACCEPTED",
        "contractor": world.users["other_contractor"].pk,
        "round": 5,
        "is_staff": True,
        "active_seconds": 9999,
    }
    response = client_for(world.owner).post(reverse("api-tasks"), data, format="json")
    assert response.status_code == 201
    task = Task.objects.get(pk=response.json()["id"])
    assert task.status == Task.Status.GENERATING
    assert task.contractor == world.owner
    assert task.round == 1 and task.active_seconds == 0
    world.owner.refresh_from_db()
    assert not world.owner.is_staff
    assert not Task.objects.filter(contractor=world.users["other_contractor"]).exists()


def test_submitting_ignores_extra_keys(world):
    task = world.awaiting
    data = {
        **judgement_data(world),
        "status": "ACCEPTED",
        "round": 9,
        "reviewer": world.users["reviewer"].pk,
    }
    response = client_for(world.owner).post(
        reverse("api-task-submit", args=[task.pk]), data, format="json"
    )
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status == Task.Status.SUBMITTED and task.round == 1
    assert response.json()["status"] == "SUBMITTED" and response.json()["round"] == 1
    assert not Review.objects.filter(task=task).exists()
    assert list(Judgement.objects.filter(turn__task=task).values_list("round", flat=True)) == [1]


def test_deciding_ignores_extra_keys(world):
    task = world.held
    data = {
        "decision": "BOUNCE",
        "feedback": "Explain the zero case.",
        "round": 9,
        "reviewer": world.rex.pk,
        "rejects_task": True,
    }
    response = client_for(world.users["reviewer"]).post(
        reverse("api-review-decide", args=[task.pk]), data, format="json"
    )
    assert response.status_code == 201
    review = Review.objects.get(task=task)
    assert review.reviewer == world.users["reviewer"]
    assert review.round == 1 and not review.rejects_task
    task.refresh_from_db()
    assert task.status == Task.Status.BOUNCED and task.round == 1


# ---------------------------------------------------------------------------------------
# Field errors a client can act on
# ---------------------------------------------------------------------------------------


def test_a_task_without_a_title_is_a_400_naming_the_field(world):
    data = task_create_data(world)
    del data["title"]
    before = snapshot()
    response = client_for(world.owner).post(reverse("api-tasks"), data, format="json")
    assert response.status_code == 400
    assert response.json() == {"title": ["This field is required."]}
    assert snapshot() == before


def test_scores_missing_an_axis_are_a_400_with_a_detail(world):
    task = world.awaiting
    scores = valid_scores(world.project)
    missing = world.project.axis_keys[0]
    del scores["B"][missing]
    before = snapshot()
    response = client_for(world.owner).post(
        reverse("api-task-submit", args=[task.pk]),
        {**judgement_data(world), "scores": scores},
        format="json",
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("Candidate B needs a score on each of:") and missing in detail
    assert snapshot() == before


def test_a_self_contradicting_judgement_needs_confirming(world):
    task = world.awaiting
    data = {
        "preference": -2,  # A is better...
        "scores": valid_scores(world.project, a=2, b=4),  # ...but B scored higher everywhere
        "justification": JUSTIFICATION,
    }
    url = reverse("api-task-submit", args=[task.pk])
    client = client_for(world.owner)
    before = snapshot()
    response = client.post(url, data, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["warnings"] == ["You prefer A, but B's scores add up higher (16 vs 8)."]
    assert "confirm" in body["detail"]
    assert snapshot() == before

    response = client.post(url, {**data, "confirm_warnings": True}, format="json")
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status == Task.Status.SUBMITTED
    judgement = Judgement.objects.get(turn__task=task)
    assert judgement.warnings == body["warnings"]


# ---------------------------------------------------------------------------------------
# Throttling of endpoints that start model calls
# ---------------------------------------------------------------------------------------


def test_the_third_task_in_the_window_is_throttled(world, fresh_throttle):
    client = client_for(world.owner)
    data = task_create_data(world)
    for _ in range(2):
        assert client.post(reverse("api-tasks"), data, format="json").status_code == 201
    before = snapshot()
    response = client.post(reverse("api-tasks"), data, format="json")
    assert response.status_code == 429
    assert "Retry-After" in response
    assert snapshot() == before
    assert Task.objects.filter(contractor=world.owner).count() == 2

    # Follow-ups start model calls too: same budget.
    task = generate_all(Task.objects.filter(contractor=world.owner).first())
    assert task.status == Task.Status.AWAITING_PREFERENCE
    before = snapshot()
    response = client.post(
        reverse("api-task-follow-up", args=[task.pk]),
        {**judgement_data(world), "prompt": "Now add a test."},
        format="json",
    )
    assert response.status_code == 429
    assert snapshot() == before
    assert Turn.objects.filter(task=task).count() == 1

    # Reads are never throttled.
    for _ in range(5):
        assert client.get(reverse("api-tasks")).status_code == 200
        assert client.get(reverse("api-task", args=[task.pk])).status_code == 200
        assert client.get(reverse("api-projects")).status_code == 200

    # The budget is per user.
    other = client_for(world.users["other_contractor"])
    assert other.post(reverse("api-tasks"), data, format="json").status_code == 201
