"""The dashboard at 1,000,000 judged turns, read from the aggregates (issue 19, "Dashboard").

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench_d .venv/bin/python -m bench.dashboard_bench

Builds (once; --rebuild to redo) with set-based SQL (INSERT ... SELECT generate_series):
500,000 accepted tasks of 2 judged turns each (1M turns, 2M candidates, 1M final
judgements, one accepting review and one submission per task) in 3 projects whose pools
hold the same 6 endpoints, by 200 contractors and 20 reviewers over two years; 10% of the
turns judged again by a second contractor (overlap pairs) and 5% of the acceptances
audited. Then `manage.py dashboard_aggregates_rebuild` (timed) fills the aggregates.

Measured, median of 5 runs each, server time through Django's test Client (the real views,
templates and serializers, logged in as an admin):

- the whole-site dashboard page, a project's dashboard page (leaderboard included), and
  `GET /api/dashboard/?project=`; target ≤ 300 ms each;
- the aggregate step of an acceptance (`aggregates_add_decision`, what review_decide adds
  inside its transaction) on the 1M-turn tables, over 50 tasks, each rolled back; target
  ≤ 5 ms per accepted task (median and p95 shown, the median is the target);
- for scale, `dashboard_from_scratch` (today's per-request computation) once.

Also checked: the aggregated dashboard and leaderboard equal the from-scratch ones on this
data. Prints a table; exits 1 when a target or a check is missed.
"""

# Statements below are built from constants and ids this script made: no outside input.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bench import _setup

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marlin_bench_d"
TASKS = 500_000
TURNS = 2 * TASKS
CONTRACTORS = 200
REVIEWERS = 20
ENDPOINTS = 6
PROJECTS = 3
RUNS = 5
ACCEPT_SAMPLES = 50
PAGE_TARGET_MS = 300.0
ACCEPT_TARGET_MS = 5.0
DATA_MARK = "bench.dashboard_bench synthetic data v1"


def _data_present() -> bool:
    from tasks.models import Judgement, Project

    return (
        Project.objects.filter(guidelines=DATA_MARK).count() == PROJECTS
        and Judgement.objects.count() == TURNS
    )


def build_data() -> None:
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from repos.models import Repository
    from tasks.models import ModelEndpoint, Project, ProjectEndpoint, default_rubric_axes

    if "bench" not in connection.settings_dict["NAME"]:
        raise SystemExit("refusing to empty a database whose name does not contain 'bench'")
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE reviews_reviewaudit, reviews_judgingtask, reviews_review, "
            "tasks_submission, tasks_judgement, tasks_candidate, tasks_turn, tasks_task, "
            "tasks_projectendpoint, tasks_project, tasks_modelendpoint, repos_repository, "
            "auth_user RESTART IDENTITY CASCADE"
        )
    people = [User(username=f"contractor{i:03d}") for i in range(1, CONTRACTORS + 1)]
    people += [User(username=f"reviewer{i:02d}") for i in range(1, REVIEWERS + 1)]
    for person in people:
        person.set_unusable_password()
    User.objects.bulk_create(people)
    User.objects.create_superuser("bench-admin", "admin@example.com", None)
    endpoints = ModelEndpoint.objects.bulk_create(
        [ModelEndpoint(name=f"model-{i}") for i in range(1, ENDPOINTS + 1)]
    )
    projects = Project.objects.bulk_create(
        [
            Project(name=f"Project {i} (bench)", guidelines=DATA_MARK,
                    rubric_axes=default_rubric_axes(), overlap_percent=10, audit_percent=5)
            for i in range(1, PROJECTS + 1)
        ]
    )  # fmt: skip
    ProjectEndpoint.objects.bulk_create(
        ProjectEndpoint(project=p, endpoint=e) for p in projects for e in endpoints
    )
    g = _setup.github_repositories(1, seed=19)[0]
    Repository.objects.create(
        full_name=g["full_name"], clone_url=g["clone_url"], html_url=g["html_url"],
        default_branch=g["default_branch"], language=g["language"] or "",
        description=g["description"] or "", topics=g["topics"],
        search_text=Repository.search_text_for(g["full_name"], g["description"] or "", g["topics"]),
        topics_text=Repository.topics_text_for(g["topics"]), clone_status="READY",
    )  # fmt: skip
    pairs = [(a.pk, b.pk) for i, a in enumerate(endpoints) for b in endpoints[i + 1 :]]
    firsts = ",".join(str(a) for a, _ in pairs)
    seconds = ",".join(str(b) for _, b in pairs)
    project_ids = ",".join(str(p.pk) for p in projects)
    low = endpoints[0].pk
    statements = [
        "SELECT setseed(0.19)",
        # Task g: project, pair, contractor and reviewer by g; two years of history.
        f"""INSERT INTO tasks_task (id, created_at, updated_at, base_ref, commit_sha, title,
            kind, status, round, submitted_at, accepted_at, contractor_id, project_id,
            repository_id, active_seconds, focus_files, acceptance_tests, first_endpoint_id,
            second_endpoint_id, last_heartbeat_at)
        SELECT g, ts, ts + interval '3 hours', 'main', md5(g::text) || '00000000', 'Fix it',
            'bug_fix', 'ACCEPTED', 1, ts + interval '1 hour', ts + interval '3 hours',
            1 + g % {CONTRACTORS}, (ARRAY[{project_ids}])[1 + g % {PROJECTS}],
            (SELECT min(id) FROM repos_repository), 60 + (g::bigint * 7919) % 3600, '[]', '[]',
            (ARRAY[{firsts}])[1 + (g / 3) % {len(pairs)}],
            (ARRAY[{seconds}])[1 + (g / 3) % {len(pairs)}], NULL
        FROM (SELECT g, now() - (g % 730) * interval '1 day' - interval '4 hours' AS ts
              FROM generate_series(1, {TASKS}) g) s""",
        """INSERT INTO tasks_turn (id, created_at, updated_at, number, prompt, task_id,
            active_seconds)
        SELECT 2 * (t.id - 1) + n, t.created_at, t.created_at, n, 'Fix the parser.', t.id, 600
        FROM tasks_task t, generate_series(1, 2) n""",
        # Which endpoint answers in slot A alternates by turn.
        """INSERT INTO tasks_candidate (id, created_at, updated_at, slot, status, explanation,
            diff, error, attempts, endpoint_id, turn_id, job_id, applies_cleanly, apply_error,
            is_truncated, raw_answer, failure_detail)
        SELECT 2 * (u.id - 1) + s.k, u.created_at, u.created_at, s.slot, 'SUCCEEDED', '',
            'diff --git a/x b/x', '', 1,
            CASE WHEN (u.id % 2 = 0) = (s.slot = 'A') THEN t.first_endpoint_id
                 ELSE t.second_endpoint_id END,
            u.id, '', random() < 0.9, '', false, '', ''
        FROM tasks_turn u JOIN tasks_task t ON t.id = u.task_id,
             (VALUES (1, 'A'), (2, 'B')) s(k, slot)""",
        # The lower endpoint id is the stronger model: it wins more often, by its distance.
        f"""INSERT INTO tasks_judgement (id, created_at, updated_at, round, preference, scores,
            justification, turn_id, warnings, minhash)
        SELECT u.id, t.accepted_at, t.accepted_at, 1, p.pref,
            jsonb_build_object(
                'A', jsonb_build_object('correctness', 3 - sign(p.pref), 'security',
                     1 + (u.id % 5), 'reliability', 3, 'maintainability', 1 + (u.id % 3)),
                'B', jsonb_build_object('correctness', 3 + sign(p.pref), 'security',
                     1 + (u.id / 5 % 5), 'reliability', 3, 'maintainability', 2)),
            'Judged.', u.id, '[]', ''::bytea
        FROM tasks_turn u JOIN tasks_task t ON t.id = u.task_id
        JOIN tasks_candidate ca ON ca.turn_id = u.id AND ca.slot = 'A'
        JOIN tasks_candidate cb ON cb.turn_id = u.id AND cb.slot = 'B',
        LATERAL (SELECT CASE
            WHEN random() < 0.1 THEN 0
            WHEN random() < 0.5 + 0.08 * ((cb.endpoint_id - {low}) - (ca.endpoint_id - {low}))
            THEN -1 - floor(random() * 3)::int ELSE 1 + floor(random() * 3)::int END AS pref
        ) p""",
        f"""INSERT INTO reviews_review (id, created_at, updated_at, round, decision, feedback,
            reviewer_id, task_id, rejects_task, claimed_at)
        SELECT t.id, t.accepted_at, t.accepted_at, 1, 'ACCEPT', '',
            {CONTRACTORS} + 1 + t.id % {REVIEWERS}, t.id, false, t.submitted_at
        FROM tasks_task t""",
        """INSERT INTO tasks_submission (id, round, active_seconds, turn_count, created_at,
            submitted_by_id, task_id)
        SELECT t.id, 1, t.active_seconds, 2, t.submitted_at, t.contractor_id, t.id
        FROM tasks_task t""",
        # 10% of the turns judged again by the next contractor, half of them shown swapped.
        f"""INSERT INTO reviews_judgingtask (created_at, updated_at, swapped, status, taken_at,
            submitted_at, active_seconds, preference, scores, justification, earned,
            contractor_id, project_id, turn_id)
        SELECT j.created_at, j.created_at, u.id % 20 < 10, 'SUBMITTED', j.created_at,
            j.created_at, 300,
            CASE WHEN u.id % 3 = 0 THEN -j.preference ELSE j.preference END
                * (CASE WHEN u.id % 20 < 10 THEN -1 ELSE 1 END),
            j.scores, 'Judged again.', 2.00, 1 + (t.contractor_id % {CONTRACTORS}),
            t.project_id, u.id
        FROM tasks_turn u JOIN tasks_task t ON t.id = u.task_id
        JOIN tasks_judgement j ON j.turn_id = u.id
        WHERE u.id % 10 = 0""",
        f"""INSERT INTO reviews_reviewaudit (created_at, updated_at, review_id, auditor_id,
            status, note, decided_at)
        SELECT r.created_at, r.created_at, r.id,
            {CONTRACTORS} + 1 + (r.reviewer_id - {CONTRACTORS}) % {REVIEWERS},
            CASE WHEN r.id % 7 = 0 THEN 'OVERTURNED' ELSE 'UPHELD' END, 'Looked again.',
            r.created_at
        FROM reviews_review r WHERE r.id % 20 = 0""",
    ]
    with transaction.atomic(), connection.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
        for table in ("tasks_task", "tasks_turn", "tasks_candidate", "tasks_judgement",
                      "reviews_review", "tasks_submission"):  # fmt: skip
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
    with connection.cursor() as cur:
        for table in ("tasks_task", "tasks_turn", "tasks_candidate", "tasks_judgement",
                      "reviews_review", "tasks_submission", "reviews_judgingtask",
                      "reviews_reviewaudit"):  # fmt: skip
            cur.execute(f"VACUUM ANALYZE {table}")


def _times(call: Callable[[], object], runs: int = RUNS) -> list[float]:
    found = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        found.append(1000 * (time.perf_counter() - start))
    return found


def _accept_step_ms() -> list[float]:
    """aggregates_add_decision on ACCEPT_SAMPLES accepted tasks, each in a transaction rolled
    back, so the tables stay as built. The task is accepted already: the step adds its counts
    a second time, which costs what it costs on a task accepted just now."""
    from django.db import transaction

    from reviews.aggregates import aggregates_add_decision
    from reviews.models import Review
    from tasks.models import Task

    class _Rollback(Exception):
        pass

    step = TASKS // ACCEPT_SAMPLES
    found = []
    for task_id in range(7, TASKS, step):
        task = Task.objects.get(pk=task_id)
        review = Review.objects.get(task=task)
        try:
            with transaction.atomic():
                start = time.perf_counter()
                aggregates_add_decision(task=task, review=review)
                found.append(1000 * (time.perf_counter() - start))
                raise _Rollback
        except _Rollback:
            pass
    return found


def main() -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the data")
    args = parser.parse_args()
    _setup.setup(database_url=DEFAULT_DATABASE_URL)
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from reviews import dashboard, leaderboard
    from tasks.models import Project

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    print(f"machine:  {_setup.machine()}")
    print(f"database: {_setup.describe_database()}")
    if args.rebuild or not _data_present():
        start = time.perf_counter()
        build_data()
        print(f"data built in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    call_command("dashboard_aggregates_rebuild")
    rebuild_s = time.perf_counter() - start

    client = Client()
    client.force_login(User.objects.get(username="bench-admin"))
    project = Project.objects.filter(guidelines=DATA_MARK).order_by("pk").first()
    page = reverse("reviews:dashboard")
    api = reverse("api-dashboard")

    def get(url: str, query: dict) -> Callable[[], None]:
        def call() -> None:
            response = client.get(url, query)
            assert response.status_code == 200, response.status_code

        return call

    get(page, {})()  # warm up: imports, template loading, connection
    measured = [
        ("dashboard page, whole site", _times(get(page, {}))),
        ("dashboard page, one project", _times(get(page, {"project": project.pk}))),
        ("GET /api/dashboard/?project=", _times(get(api, {"project": project.pk}))),
    ]
    accept = _accept_step_ms()
    start = time.perf_counter()
    scratch = dashboard.dashboard_from_scratch(project=project)
    scratch_ms = 1000 * (time.perf_counter() - start)
    same_board = scratch == dashboard.dashboard(project=project)
    same_whole = dashboard.dashboard_from_scratch() == dashboard.dashboard()
    same_ranking = leaderboard.leaderboard_from_scratch(project=project) == (
        leaderboard.leaderboard(project=project)
    )

    rows = [
        [label, f"{statistics.median(t):.0f}", f"{max(t):.0f}", f"≤ {PAGE_TARGET_MS:.0f}"]
        for label, t in measured
    ]
    rows.append(
        [
            "aggregate step of one acceptance",
            f"{statistics.median(accept):.2f}",
            f"{_setup.percentile(accept, 95):.2f} (p95)",
            f"≤ {ACCEPT_TARGET_MS:.0f}",
        ]
    )
    rows.append(["dashboard_from_scratch, one project (before)", f"{scratch_ms:.0f}", "", ""])
    rows.append(["aggregates rebuild (backfill), whole site", f"{1000 * rebuild_s:.0f}", "", ""])
    print(f"\n{TURNS:,} judged turns, {TASKS:,} accepted tasks, {RUNS} runs each (ms)")
    _setup.print_table(["what", "median ms", "max ms", "target"], rows)
    checks = [(f"{label} ≤ {PAGE_TARGET_MS:.0f} ms", statistics.median(t) <= PAGE_TARGET_MS)
              for label, t in measured]  # fmt: skip
    checks += [
        (f"aggregate step ≤ {ACCEPT_TARGET_MS:.0f} ms", statistics.median(accept) <= ACCEPT_TARGET_MS),
        ("project dashboard from aggregates == from scratch", same_board),
        ("whole-site dashboard from aggregates == from scratch", same_whole),
        ("leaderboard from aggregates == from scratch", same_ranking),
    ]  # fmt: skip
    return _setup.verdict(checks)


if __name__ == "__main__":
    _setup.finish(main())
