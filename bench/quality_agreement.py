"""The dashboard's agreement section at 100,000 judged turns with 10% overlap (issue 18).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench_agreement .venv/bin/python -m bench.quality_agreement

Builds (once) 50,000 accepted tasks of 2 judged turns each (100k turns, 200k small candidates,
100k final judgements, one accepting review per task) by 200 contractors, accepted by 20
reviewers, and 10,000 submitted overlap judging tasks (10% of the turns, half of them shown
swapped) by a second contractor, all with COPY. Each contractor has a hidden reliability, so
the figures differ between people. Then, median of 3 runs each:

- `reviews.quality_agreement.agreement_tables` (the grouped queries alone);
- `reviews.quality_agreement.agreement` (the whole section: queries and bootstrap
  intervals for the project, every contractor and every reviewer), overall and for one
  project, and the section's template rendered;
- `reviews.dashboard.dashboard(samples=200)` on the same data, for comparison.

Target (issue): the agreement section (selectors and rendering) takes no longer than the
dashboard takes on the same data. Also checked: the pairs add up (every pair counted once
overall and by reviewer, twice by contractor) and the swapped tasks were mapped back (the
overall kappa is well above zero). Exits 1 when a check fails. Option: --rebuild.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from bench import _setup
from bench.copy_text import TESTING_AXIS, copy_into, row

SEED = 20261202
TASKS = 50_000
TURNS = 2 * TASKS
OVERLAP_SHARE = 0.10
CONTRACTORS = 200
REVIEWERS = 20
CHUNK_TASKS = 5_000
RUNS = 3
LAST_DAY = date(2026, 11, 25)
DATA_MARK = f"bench.quality_agreement synthetic data v1, seed {SEED}"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marlin_bench_agreement"
MIN_OVERALL_KAPPA = 0.3


# --- Raters -------------------------------------------------------------------------------


def _rate(rng: random.Random, truth: int, reliability: float, low: int, high: int) -> int:
    """The true point with `reliability`, else a neighbour (mostly) or any point."""
    roll = rng.random()
    if roll < reliability:
        return truth
    if roll < reliability + (1 - reliability) * 0.7:
        return min(high, max(low, truth + rng.choice((-1, 1))))
    return rng.randint(low, high)


def _judgement(rng, truth_pref: int, truth_a: dict, truth_b: dict, reliability: float):
    preference = _rate(rng, truth_pref, reliability, -3, 3)
    scores = {
        "A": {k: _rate(rng, v, reliability, 1, 5) for k, v in truth_a.items()},
        "B": {k: _rate(rng, v, reliability, 1, 5) for k, v in truth_b.items()},
    }
    return preference, scores


# --- Data ---------------------------------------------------------------------------------


def _data_present() -> bool:
    from reviews.models import JudgingTask
    from tasks.models import Judgement, Project, Task

    return (
        Project.objects.filter(guidelines=DATA_MARK).count() == 2
        and Task.objects.filter(status=Task.Status.ACCEPTED).count() == TASKS
        and Judgement.objects.count() == TURNS
        and JudgingTask.objects.filter(status=JudgingTask.Status.SUBMITTED).count()
        == round(TURNS * OVERLAP_SHARE)
    )


def build_data() -> None:  # noqa: PLR0915 - one linear script
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from repos.models import Repository
    from tasks.models import ModelEndpoint, Project, ProjectEndpoint
    from tasks.rubric import DEFAULT_RUBRIC_AXES, default_rubric_axes

    if "bench" not in connection.settings_dict["NAME"]:
        raise SystemExit("refusing to empty a database whose name does not contain 'bench'")
    rng = random.Random(SEED)  # noqa: S311 - synthetic data, not security
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE reviews_judgingtask, reviews_goldturn, reviews_review, tasks_submission, "
            "tasks_judgement, tasks_candidate, tasks_turn, tasks_task, tasks_projectendpoint, "
            "tasks_project, tasks_modelendpoint, repos_repository, auth_user "
            "RESTART IDENTITY CASCADE"
        )
    people = [User(username=f"contractor{i:03d}") for i in range(1, CONTRACTORS + 1)] + [
        User(username=f"reviewer{i:02d}") for i in range(1, REVIEWERS + 1)
    ]
    for person in people:
        person.set_unusable_password()
    users = User.objects.bulk_create(people)
    contractors, reviewers = users[:CONTRACTORS], users[CONTRACTORS:]
    # Most contractors are careful; one in five is sloppy.
    reliability = {
        u.pk: (rng.uniform(0.25, 0.45) if i % 5 == 0 else rng.uniform(0.55, 0.85))
        for i, u in enumerate(contractors)
    }
    endpoints = ModelEndpoint.objects.bulk_create(
        [ModelEndpoint(name=f"model-{i}") for i in range(1, 5)]
    )
    projects = Project.objects.bulk_create(
        [
            Project(name="Web services (bench)", guidelines=DATA_MARK,
                    rubric_axes=default_rubric_axes(), overlap_percent=10),
            Project(name="Systems code (bench)", guidelines=DATA_MARK,
                    rubric_axes=[*[dict(a) for a in DEFAULT_RUBRIC_AXES], TESTING_AXIS],
                    overlap_percent=10),
        ]
    )  # fmt: skip
    pairs = {projects[0].pk: (endpoints[0].pk, endpoints[1].pk),
             projects[1].pk: (endpoints[2].pk, endpoints[3].pk)}  # fmt: skip
    ProjectEndpoint.objects.bulk_create(
        ProjectEndpoint(project_id=p, endpoint_id=e) for p, pair in pairs.items() for e in pair
    )
    stamp = datetime(2025, 1, 1, tzinfo=UTC)
    repos = Repository.objects.bulk_create(
        [
            Repository(
                full_name=g["full_name"], clone_url=g["clone_url"], html_url=g["html_url"],
                default_branch=g["default_branch"], language=g["language"] or "",
                description=g["description"] or "", topics=g["topics"],
                search_text=Repository.search_text_for(
                    g["full_name"], g["description"] or "", g["topics"]),
                topics_text=Repository.topics_text_for(g["topics"]),
                clone_status="READY", cloned_at=stamp,
            )
            for g in _setup.github_repositories(10, seed=SEED)
        ]
    )  # fmt: skip
    axes = {p.pk: [a["key"] for a in p.rubric_axes] for p in projects}

    task_cols = ("id, created_at, updated_at, base_ref, commit_sha, title, kind, status, round, "
                 "submitted_at, accepted_at, contractor_id, project_id, repository_id, "
                 "active_seconds, focus_files, acceptance_tests, first_endpoint_id, "
                 "second_endpoint_id")  # fmt: skip
    turn_cols = "id, created_at, updated_at, number, prompt, task_id, active_seconds"
    cand_cols = ("id, created_at, updated_at, slot, status, explanation, diff, error, attempts, "
                 "endpoint_id, turn_id, job_id, applies_cleanly, apply_error, is_truncated, "
                 "raw_answer, failure_detail")  # fmt: skip
    judg_cols = ("id, created_at, updated_at, round, preference, scores, justification, "
                 "turn_id, warnings, minhash")  # fmt: skip
    review_cols = ("id, created_at, updated_at, round, decision, feedback, reviewer_id, task_id, "
                   "rejects_task")  # fmt: skip
    sub_cols = "id, round, active_seconds, turn_count, created_at, submitted_by_id, task_id"
    jt_cols = ("id, created_at, updated_at, swapped, status, taken_at, submitted_at, "
               "active_seconds, preference, scores, justification, earned, contractor_id, "
               "project_id, turn_id")  # fmt: skip
    first_day = LAST_DAY - timedelta(days=TASKS // 100 - 1)
    overlap_turns = set(rng.sample(range(1, TURNS + 1), round(TURNS * OVERLAP_SHARE)))
    judging_id = 0
    with transaction.atomic(), connection.cursor() as cur:
        for first in range(1, TASKS + 1, CHUNK_TASKS):
            tasks, turns, cands, judgs, reviews, subs, judging = [], [], [], [], [], [], []
            for task_id in range(first, min(first + CHUNK_TASKS, TASKS + 1)):
                created = datetime.combine(
                    first_day + timedelta(days=(task_id - 1) // 100), dtime(8), tzinfo=UTC
                ) + timedelta(minutes=4 * ((task_id - 1) % 100))
                project = projects[0] if rng.random() < 0.6 else projects[1]
                contractor = rng.choice(contractors)
                reviewer = rng.choice(reviewers)
                accepted = created + timedelta(hours=3)
                for number in (1, 2):
                    turn_id = 2 * (task_id - 1) + number
                    turns.append(row(turn_id, created, created, number,
                                      f"Fix the parser, step {number}.", task_id, 600))  # fmt: skip
                    pair = list(pairs[project.pk])
                    rng.shuffle(pair)
                    for offset, (slot, endpoint_id) in enumerate(zip("AB", pair, strict=True)):
                        cands.append(row(
                            2 * (turn_id - 1) + offset + 1, created, created, slot, "SUCCEEDED",
                            "Explained.", "diff --git a/x b/x\n", "", 1, endpoint_id, turn_id, "",
                            rng.random() < 0.9, "", False, "", "",
                        ))  # fmt: skip
                    truth_pref = rng.choice((-3, -2, -2, -1, -1, 0, 1, 1, 2, 2, 3))
                    lead = -truth_pref / 2
                    truth_a = {k: min(5, max(1, round(3 + lead / 2 + rng.gauss(0, 1))))
                               for k in axes[project.pk]}  # fmt: skip
                    truth_b = {k: min(5, max(1, round(3 - lead / 2 + rng.gauss(0, 1))))
                               for k in axes[project.pk]}  # fmt: skip
                    pref, scores = _judgement(
                        rng, truth_pref, truth_a, truth_b, reliability[contractor.pk]
                    )
                    judgs.append(row(turn_id, accepted, accepted, 1, pref, json.dumps(scores),
                                      "Judged.", turn_id, "[]", ""))  # fmt: skip
                    if turn_id in overlap_turns:
                        second = rng.choice(contractors)
                        while second.pk == contractor.pk:
                            second = rng.choice(contractors)
                        pref2, scores2 = _judgement(
                            rng, truth_pref, truth_a, truth_b, reliability[second.pk]
                        )
                        swapped = rng.random() < 0.5
                        if swapped:  # stored as shown: the turn's B in the contractor's A
                            pref2, scores2 = -pref2, {"A": scores2["B"], "B": scores2["A"]}
                        judging_id += 1
                        done = accepted + timedelta(days=1)
                        judging.append(row(
                            judging_id, done, done, swapped, "SUBMITTED", done, done, 300, pref2,
                            json.dumps(scores2), "Judged again.", "20.00", second.pk, project.pk,
                            turn_id,
                        ))  # fmt: skip
                tasks.append(row(
                    task_id, created, accepted, "main", f"{rng.getrandbits(160):040x}",
                    "Fix the parser", "bug_fix", "ACCEPTED", 1, created + timedelta(hours=1),
                    accepted, contractor.pk, project.pk, rng.choice(repos).pk, 1200, "[]", "[]",
                    *sorted(pairs[project.pk]),
                ))  # fmt: skip
                reviews.append(row(task_id, accepted, accepted, 1, "ACCEPT", "", reviewer.pk,
                                    task_id, False))  # fmt: skip
                subs.append(row(task_id, 1, 1200, 2, created + timedelta(hours=1),
                                 contractor.pk, task_id))  # fmt: skip
            copy_into(cur, "tasks_task", task_cols, tasks)
            copy_into(cur, "tasks_turn", turn_cols, turns)
            copy_into(cur, "tasks_candidate", cand_cols, cands)
            copy_into(cur, "tasks_judgement", judg_cols, judgs)
            copy_into(cur, "reviews_review", review_cols, reviews)
            copy_into(cur, "tasks_submission", sub_cols, subs)
            copy_into(cur, "reviews_judgingtask", jt_cols, judging)
        for table in ("tasks_task", "tasks_turn", "tasks_candidate", "tasks_judgement",
                      "reviews_review", "tasks_submission", "reviews_judgingtask"):  # fmt: skip
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - fixed names
                f"(SELECT max(id) FROM {table}))"
            )


def ensure_data(*, rebuild: bool) -> tuple[bool, float]:
    from django.db import connection

    if not rebuild and _data_present():
        return False, 0.0
    start = time.perf_counter()
    build_data()
    with connection.cursor() as cur:
        for table in ("tasks_task", "tasks_turn", "tasks_candidate", "tasks_judgement",
                      "reviews_review", "tasks_submission", "reviews_judgingtask"):  # fmt: skip
            cur.execute(f"VACUUM ANALYZE {table}")
    if not _data_present():
        raise SystemExit("the data was built but does not have the expected counts")
    return True, time.perf_counter() - start


# --- Measuring ----------------------------------------------------------------------------


def _timed(call: Callable[[], object]) -> tuple[list[float], object, list[dict]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    runs, result, queries = [], None, []
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            result = call()
            runs.append(time.perf_counter() - start)
        queries = list(ctx.captured_queries)
    return runs, result, queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the data")
    args = parser.parse_args()

    _setup.setup(database_url=DEFAULT_DATABASE_URL)
    from django.template.loader import render_to_string

    from reviews.dashboard import dashboard
    from reviews.quality_agreement import agreement, agreement_tables
    from tasks.models import Project

    print(f"machine:  {_setup.machine()}")
    print(f"database: {_setup.describe_database()}")
    built, build_s = ensure_data(rebuild=args.rebuild)
    pairs_expected = round(TURNS * OVERLAP_SHARE)
    what = f"{TASKS:,} tasks / {TURNS:,} judged turns / {pairs_expected:,} overlap pairs"
    print(f"data:     {'built' if built else 'reused'} {what}"
          + (f" in {build_s:.1f} s" if built else " (--rebuild to rebuild)"))  # fmt: skip

    project = Project.objects.get(name="Web services (bench)")
    measured: list[tuple[str, list[float], list[dict]]] = []

    def measure(label: str, call: Callable[[], object]) -> object:
        runs, result, queries = _timed(call)
        measured.append((label, runs, queries))
        return result

    tables = measure("agreement_tables, all projects", agreement_tables)
    section = measure("agreement section, all projects", agreement)
    measure("  its template rendered",
            lambda: render_to_string("reviews/_agreement.html", {"agreement": section}))  # fmt: skip
    one = measure(f"agreement section, {project.name}", lambda: agreement(project=project))
    measure("dashboard(samples=200), all projects", lambda: dashboard(samples=200))
    measure(f"dashboard(samples=200), {project.name}",
            lambda: dashboard(project=project, samples=200))  # fmt: skip

    print()
    _setup.print_table(
        ["measure", "median s", "runs s", "queries", "SQL s (last run)"],
        [
            [label, statistics.median(runs), " / ".join(f"{r:.3f}" for r in runs), len(queries),
             sum(float(q["time"]) for q in queries)]
            for label, runs, queries in measured
        ],
    )  # fmt: skip
    slowest = sorted(measured[1][2], key=lambda q: -float(q["time"]))[:3]
    print("\nslowest queries of the section (all projects):")
    for query in slowest:
        print(f"  {float(query['time']):.3f} s  {query['sql'][:110]}")
    overall = section.overall
    print(f"\noverall: {overall.pairs:,} pairs, direction {overall.direction.estimate:.3f} "
          f"[{overall.direction.low:.3f}, {overall.direction.high:.3f}], kappa "
          f"{overall.kappa.estimate:.3f} [{overall.kappa.low:.3f}, {overall.kappa.high:.3f}], "
          + ", ".join(f"alpha {a.key} {a.alpha.estimate:.3f}" for a in overall.axes))  # fmt: skip
    print(f"rows: {len(section.contractors)} contractors, {len(section.reviewers)} reviewers; "
          f"{project.name}: {one.pairs:,} pairs")  # fmt: skip

    median = {label: statistics.median(runs) for label, runs, _ in measured}
    section_s = median["agreement section, all projects"] + median["  its template rendered"]
    board_s = median["dashboard(samples=200), all projects"]
    by_contractor = sum(t.pairs for t in tables.by_contractor.values())
    by_reviewer = sum(t.pairs for t in tables.by_reviewer.values())
    checks = [
        (f"every pair counted: {tables.overall.pairs:,} overall and {by_reviewer:,} by reviewer "
         f"(expected {pairs_expected:,}), {by_contractor:,} by contractor (twice)",
         tables.overall.pairs == by_reviewer == pairs_expected
         and by_contractor == 2 * pairs_expected),
        (f"swapped tasks mapped back: overall kappa {overall.kappa.estimate:.3f} >= "
         f"{MIN_OVERALL_KAPPA}", (overall.kappa.estimate or 0) >= MIN_OVERALL_KAPPA),
        (f"agreement section with its template, all projects, {section_s:.2f} s <= the "
         f"dashboard on the same data, {board_s:.2f} s", section_s <= board_s),
    ]  # fmt: skip
    return _setup.verdict(checks)


if __name__ == "__main__":
    _setup.finish(main())
