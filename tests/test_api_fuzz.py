"""Schema-driven fuzzing of our own API: no request, from any role, is answered with a 5xx.

Schemathesis reads the OpenAPI schema drf-spectacular serves at /api/schema/, generates
requests for every operation and sends them to the WSGI application in-process, against
the test database. The only check is schemathesis' `not_a_server_error`.

Each role reaches different code (a contractor works on tasks, a reviewer claims and
decides them, an admin exports and sees pay and metrics; everyone else gets a 403 there),
so the run goes role by role over one seeded world:

1. fuzzing phase, as every role, every operation: MAX_EXAMPLES valid and invalid requests;
2. examples and coverage phases (schemathesis' deterministic boundary and wrong-type
   cases: a body that is a list, a missing field, unexpected methods...) for each operation,
   once, as the first role that got past its permission check in step 1. The coverage phase
   is not bounded by max_examples and is what finds most bugs; running it again as roles
   that are refused would only repeat the 403.

Path ids and the ids in request bodies are drawn mostly from the seeded rows (on
PostgreSQL ids are not 1..N: sequences are not rolled back), so requests get past the
lookups and the services do real work. Each request runs in a savepoint rolled back
afterwards, so every example meets the same world whatever earlier examples created,
claimed or decided. No operation is excluded: the binary download works in-process, and
POSTs that enqueue Celery jobs only register on_commit callbacks, which never fire inside
the test transaction.

Why not `schemathesis.pytest.from_fixture(...).parametrize()`: with pytest 9.2 it fails
before running anything (AttributeError: 'Function' object has no attribute '_nodeid');
and the module-level `schema.parametrize()` makes one test per operation, rebuilding the
world (a clone, six tasks, an export) for each. So this runs the per-operation tests that
`from_fixture` builds itself (`get_all_tests`) from one test.
"""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import schemathesis
from django.apps import apps
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connection, transaction
from django.urls import reverse
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.pytest.lazy import get_all_tests

from marlin import roles
from repos.models import CatalogueImport
from reviews.claim_services import review_claim
from reviews.comment_services import line_comment_add
from reviews.export_filters import ExportFilters
from reviews.export_job_services import export_job_execute, export_job_start
from reviews.models import ReviewAudit
from reviews.quality_overlap import judging_task_next
from tasks import generation_services
from tasks.diffview import candidate_diff_view
from tasks.models import Candidate, CheckRecipe
from tests.api_clients import api_token_for
from tests.factories import RepositoryFactory, UserFactory, pool_endpoints
from tests.tasks.helpers import create_task, decide, generate_all, submit

# The order matters only for who runs the coverage phase of an operation several roles use.
PERSONAS = ("contractor", "reviewer", "admin")
# Requests per operation and role in the fuzzing phase.
MAX_EXAMPLES = 12
# With derandomize, a given schema and world always get the same requests: CI can repeat them.
SEED = 20240601
# A broken or emptied schema must not pass as "no server errors"; there are ~29 operations.
MIN_OPERATIONS = 20
# Answers that mean the request never got past routing or the permission check.
NOT_REACHED = {401, 403, 404, 405}

FUZZ_SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    # Requests are slow next to Hypothesis' expectations, and the request strategies big.
    suppress_health_check=list(HealthCheck),
)
FUZZING = {"examples": {"enabled": False}, "coverage": {"enabled": False}}
COVERAGE = {"fuzzing": {"enabled": False}}


@dataclass
class FuzzRun:
    """What was sent and answered, per role and phase, and the 5xx found."""

    statuses: Counter = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    last_server_error: dict[str, str] = field(default_factory=dict)

    def labels(self, persona: str, reached: bool = False) -> set[str]:
        return {
            label
            for (who, _, label, status) in self.statuses
            if who == persona and not (reached and status in NOT_REACHED)
        }

    def requests(self, phase: str | None = None) -> int:
        return sum(n for (_, ph, _, _), n in self.statuses.items() if phase in (None, ph))

    def table(self) -> str:
        rows: dict[tuple[str, str], Counter] = {}
        for (persona, _, label, status), n in self.statuses.items():
            rows.setdefault((label, persona), Counter())[status] += n
        return "\n".join(
            f"  {label:42} {persona:10} {dict(sorted(codes.items()))}"
            for (label, persona), codes in sorted(rows.items())
        )


@dataclass
class InProcess:
    app: WSGIHandler
    # The exceptions behind the 500s of the current request.
    tracebacks: list[str]


@pytest.fixture
def in_process() -> Iterator[InProcess]:
    """The WSGI application, called directly the way Django's test client calls it.

    The handler's request_started/request_finished close "old" connections, and one inside
    the test transaction (autocommit off) counts as old: closing it would break the test
    transaction. django.request does not log the thousands of expected 4xx.
    """
    # Before the log level is set: get_wsgi_application() configures logging again.
    app = get_wsgi_application()
    tracebacks: list[str] = []

    def remember(sender, request=None, **kwargs) -> None:
        tracebacks.append(traceback.format_exc())

    request_log = logging.getLogger("django.request")
    level = request_log.level
    request_log.setLevel(logging.CRITICAL)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    got_request_exception.connect(remember)
    try:
        yield InProcess(app=app, tracebacks=tracebacks)
    finally:
        got_request_exception.disconnect(remember)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
        request_log.setLevel(level)


# Above any id Hypothesis draws by itself (it favours small integers).
FIRST_SEEDED_ID = 100_000


def _ids_past_small_integers() -> None:
    """Every seeded row gets an id of FIRST_SEEDED_ID or more.

    On a fresh test database the rows would be 1..N, and the integers Hypothesis draws
    outside the dictionaries would hit them by luck: which role reaches which operation
    would then depend on what ran before on the database, and pass alone but fail in CI.
    """
    with connection.cursor() as cursor:
        for model in apps.get_models():
            if model._meta.app_label not in {"tasks", "reviews", "repos", "auth"}:
                continue
            cursor.execute(
                "SELECT setval(seq, GREATEST(COALESCE(pg_sequence_last_value(seq), 0), %s))"
                " FROM (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq) AS s"
                " WHERE seq IS NOT NULL",
                [FIRST_SEEDED_ID, model._meta.db_table, model._meta.pk.column],
            )


@pytest.fixture
def world(settings, ready_repository, project, contractor, reviewer, admin_user):
    """A catalogue, tasks in every state a role acts on, a finished export."""
    _ids_past_small_integers()
    # A 429 would hide what the model-call endpoints do after the first few requests.
    settings.MARLIN_API_MODEL_CALLS_RATE = "100000/minute"
    uncloned = RepositoryFactory(full_name="octo/uncloned")

    def new_task(prompt: str):
        return create_task(
            contractor=contractor, project=project, repository=ready_repository, prompt=prompt
        )

    awaiting = generate_all(new_task("Add a subtract function."))
    submitted = submit(generate_all(new_task("Make div safe.")))
    claimed = submit(generate_all(new_task("Add a power function.")))
    review_claim(task=claimed, reviewer=reviewer)
    bounced = submit(generate_all(new_task("Document add.")))
    decide(bounced, reviewer=reviewer, decision="BOUNCE", feedback="Say what add returns.")
    accepted = submit(generate_all(new_task("Make add accept floats.")))
    decide(accepted, reviewer=reviewer, decision="ACCEPT")
    # A pair the contractor holds for judging (another contractor's accepted turn), and an
    # open audit of a second reviewer's acceptance that the reviewer may take.
    project.overlap_percent = 100
    project.audit_percent = 100
    project.save()
    dave, rex = UserFactory(role=roles.CONTRACTOR), UserFactory(role=roles.REVIEWER)
    judged = create_task(
        contractor=dave, project=project, repository=ready_repository, prompt="Add abs."
    )
    decide(submit(generate_all(judged)), reviewer=rex)
    judging = judging_task_next(user=contractor)
    audit = ReviewAudit.objects.get(review__task=judged)
    failed = new_task("Add a multiply function.")
    for candidate in Candidate.objects.filter(turn__task=failed):
        generation_services.candidate_fail(candidate_id=candidate.pk, reason="The model timed out.")
    export = export_job_execute(
        export_job_start(by=admin_user, fmt="native", filters=ExportFilters()).pk
    )
    tasks = [awaiting, submitted, claimed, bounced, accepted, failed]
    awaiting_a = Candidate.objects.get(turn__task=awaiting, slot="A")
    file = candidate_diff_view(awaiting_a).files[0]
    line = next(d.new_no for h in file.hunks for d in h.lines if d.new_no)
    comment = line_comment_add(
        candidate=awaiting_a, by=contractor, path=file.result_path, side="new", line=line,
        text="Seeded.",
    )  # fmt: skip
    catalogue_import = CatalogueImport.objects.create(requested_by=admin_user, filename="r.json")
    recipe = CheckRecipe.objects.create(
        repository=ready_repository, checks=[{"name": "tests", "command": ["pytest"]}]
    )
    return {
        "users": {"admin": admin_user, "contractor": contractor, "reviewer": reviewer},
        # The task each role's coverage phase works on: one it can still act on.
        "task_of": {"admin": submitted.pk, "contractor": awaiting.pk, "reviewer": claimed.pk},
        "ids": {
            "repositories": [ready_repository.pk, uncloned.pk],
            "tasks": [task.pk for task in tasks],
            # The failed ones can be retried; one that succeeded cannot.
            "candidates": [
                *Candidate.objects.filter(turn__task=failed).values_list("pk", flat=True),
                Candidate.objects.filter(turn__task=accepted).values_list("pk", flat=True)[0],
                awaiting_a.pk,  # the contractor may comment on its lines
            ],
            "line_comments": [comment.pk],
            "exports": [export.pk],
            "catalogue_imports": [catalogue_import.pk],
            "projects": [project.pk],
            "endpoints": [pool_endpoints(project)[0].pk, pool_endpoints(project)[1].pk],
            "users": [contractor.pk, reviewer.pk],
            "check_recipes": [recipe.pk],
            "project_endpoints": list(project.pool.values_list("pk", flat=True)),
            "judging_tasks": [judging.pk],
            "audits": [audit.pk],
        },
    }


def _config(
    *, token: str, ids: dict[str, list[int]], phases: dict, pinned: dict[str, int] | None = None
) -> SchemathesisConfig:
    """Auth, phases and data for one role; seeded values are used 80% of the time.

    With `pinned`, path ids are fixed to those rows instead: the coverage phase draws no
    values from dictionaries, and its many body variants are only worth sending to a row
    the role may act on (otherwise nearly all of them stop at a 404).
    """

    def operation(path_regex: str, path_id: str, **body: str) -> dict:
        """Path `id` from the dictionary named `path_id`, body fields from the ones named."""
        bindings = {"path.id": path_id, **{f"body.{name}": source for name, source in body.items()}}
        parameters = {
            key: {"dictionary": source, "probability": 0.8}
            for key, source in bindings.items()
            if source
        }
        if pinned and path_id:
            parameters["path.id"] = pinned[path_id]
        return {"include-path-regex": path_regex, "parameters": parameters}

    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Token {token}"},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
            "phases": phases,
            "dictionaries": {
                "formats": {"values": ["native", "trl", "openai", "csv"]},
                **{name: {"values": values} for name, values in ids.items()},
            },
            # The first entry whose path matches an operation is the one applied to it.
            "operations": [
                operation(r"^/api/repositories/\{id\}/", "repositories"),
                operation(r"^/api/admin/repositories/\{id\}/", "repositories"),
                operation(r"^/api/admin/projects/\{id\}/", "projects"),
                operation(
                    r"^/api/admin/project-endpoints/\{id\}/",
                    "project_endpoints",
                    project="projects",
                    endpoint="endpoints",
                ),
                operation(
                    r"^/api/admin/project-endpoints/$",
                    "",
                    project="projects",
                    endpoint="endpoints",
                ),
                operation(r"^/api/admin/endpoints/\{id\}/", "endpoints"),
                operation(r"^/api/admin/users/\{id\}/", "users"),
                operation(
                    r"^/api/admin/check-recipes/\{id\}/",
                    "check_recipes",
                    repository="repositories",
                    project="projects",
                ),  # fmt: skip
                operation(r"^/api/(reviews/)?tasks/\{id\}/", "tasks"),
                operation(r"^/api/judging-tasks/\{id\}/", "judging_tasks"),
                operation(r"^/api/reviews/audits/\{id\}/", "audits"),
                operation(r"^/api/candidates/\{id\}/", "candidates"),
                operation(r"^/api/line-comments/\{id\}/", "line_comments"),
                operation(r"^/api/exports/\{id\}/", "exports"),
                operation(r"^/api/repos/imports/\{id\}/", "catalogue_imports"),
                operation(
                    r"^/api/exports/$",
                    "",
                    project="projects",
                    format="formats",
                    **{"endpoints[*]": "endpoints"},
                ),
                operation(r"^/api/tasks/$", "", project="projects", repository="repositories"),
            ],
        }
    )


def _load_schema(in_process: InProcess, config: SchemathesisConfig):
    # The schema is for signed-in users: it is read with the role's token as well.
    headers = config.projects.default.headers
    return schemathesis.openapi.from_wsgi(
        reverse("api-schema"), in_process.app, config=config, headers=headers
    )


def _only(schema, labels: set[str]):
    """The schema with just these operations. (An include filter would not do: includes are
    OR-ed with the `operations` blocks of the config, which match every operation here.)"""
    every = {result.ok().label for result in schema.get_all_operations()}
    return schema.exclude(name=sorted(every - labels))


def _run(
    run: FuzzRun,
    *,
    persona: str,
    phase: str,
    schema,
    tracebacks: list[str],
) -> list[str]:
    """Every operation of `schema`, through schemathesis' own per-operation test builder.

    Each request runs in a savepoint that is always rolled back; a 5xx fails the operation,
    and the run goes on with the next one. Returns the labels of the operations run.
    """

    def send(case) -> None:
        tracebacks.clear()
        with transaction.atomic():
            response = case.call()
            transaction.set_rollback(True)
        label = case.operation.label
        run.statuses[(persona, phase, label, response.status_code)] += 1
        if response.status_code >= 500:
            # Hypothesis replays the minimal failing example last: that is the one kept.
            run.last_server_error[label] = (
                f"{case.as_curl_command()}\n-> {response.status_code}\n{''.join(tracebacks)}"
            )
        case.validate_response(response, checks=[not_a_server_error])

    labels = []
    tests = get_all_tests(schema=schema, test_func=send, settings=FUZZ_SETTINGS, given_kwargs={})
    for result in tests:
        assert isinstance(result, Ok), f"schemathesis cannot test an operation: {result.err()}"
        operation, test = result.ok()
        labels.append(operation.label)
        try:
            test()
        except (AssertionError, FailureGroup) as exc:
            detail = run.last_server_error.pop(operation.label, None) or repr(exc)
            run.failures[f"{operation.label} as {persona} ({phase})"] = detail
    return labels


def _cover(
    run: FuzzRun, in_process: InProcess, world: dict, *, persona: str, token: str, labels: set[str]
) -> None:
    """The examples and coverage phases of these operations, as `persona`, on its own task."""
    if not labels:
        return
    pinned = {name: values[0] for name, values in world["ids"].items()}
    pinned["tasks"] = world["task_of"][persona]
    config = _config(token=token, ids=world["ids"], phases=COVERAGE, pinned=pinned)
    schema = _only(_load_schema(in_process, config), labels)
    _run(run, persona=persona, phase="coverage", schema=schema, tracebacks=in_process.tracebacks)


# Every operation as every role, by design the longest test (several minutes under
# coverage): its own bound instead of the suite's per-test one.
@pytest.mark.timeout(1800)
def test_no_request_is_answered_with_a_server_error(world, in_process):
    run = FuzzRun()
    tokens = {name: api_token_for(user) for name, user in world["users"].items()}
    operations: list[str] = []
    covered: set[str] = set()
    for persona in PERSONAS:
        schema = _load_schema(
            in_process, _config(token=tokens[persona], ids=world["ids"], phases=FUZZING)
        )
        operations = _run(
            run, persona=persona, phase="fuzzing", schema=schema, tracebacks=in_process.tracebacks
        )
        assert len(operations) > MIN_OPERATIONS, f"only {len(operations)} operations: {operations}"
        mine = run.labels(persona, reached=True) - covered
        covered |= mine
        _cover(run, in_process, world, persona=persona, token=tokens[persona], labels=mine)
    # Fuzzing reaches an operation only if a drawn id is one the role may act on; where no role
    # was that lucky, each role tries it once more on its own task before the run calls it
    # unreachable.
    for persona in PERSONAS:
        missing = set(operations) - covered
        _cover(run, in_process, world, persona=persona, token=tokens[persona], labels=missing)
        covered |= run.labels(persona, reached=True) & missing
    print(
        f"\n{len(operations)} operations, {run.requests()} requests "
        f"({run.requests('fuzzing')} fuzzing, {run.requests('coverage')} examples+coverage)\n"
        f"{run.table()}"
    )
    if run.failures:
        found = "\n\n".join(f"{key}:\n{text}" for key, text in run.failures.items())
        pytest.fail(f"{len(run.failures)} operations answered 5xx:\n\n{found}", pytrace=False)
    # Every operation did real work for some role: auth and the seeded ids work.
    assert covered == set(operations), f"no role got past: {sorted(set(operations) - covered)}"


def test_a_server_error_fails_the_fuzz(monkeypatch, world, in_process):
    """The harness itself: an endpoint that crashes is reported, with its traceback."""
    from tasks.api import ProjectListApi

    def crash(self):
        raise RuntimeError("deliberate crash")

    monkeypatch.setattr(ProjectListApi, "get_queryset", crash)
    token = api_token_for(world["users"]["contractor"])
    schema = _load_schema(in_process, _config(token=token, ids=world["ids"], phases=FUZZING))
    run = FuzzRun()
    _run(
        run,
        persona="contractor",
        phase="fuzzing",
        schema=_only(schema, {"GET /api/projects/"}),
        tracebacks=in_process.tracebacks,
    )
    assert list(run.failures) == ["GET /api/projects/ as contractor (fuzzing)"]
    assert "deliberate crash" in run.failures["GET /api/projects/ as contractor (fuzzing)"]
