"""Dataset exports over 100,000 judged turns: native JSONL speed, flat memory, dashboard.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench_exports .venv/bin/python -m bench.exports

Builds (once) 50,000 accepted tasks of 2 judged turns each (100k turns, 200k candidates with
an explanation and a unified diff), then:

- times `reviews.export_job_services.write_export(fmt="native")` into a temporary file for a date range
  of ~10k judged turns and for the default filters (all 100k), as an export job runs it;
- measures the peak memory of each export: the growth of the process's peak RSS (VmHWM, reset
  before each export) and, in a second run of each, the tracemalloc peak;
- checks that two exports with the same filters give the same sha256;
- counts the CPU each export used (this process's user and system time, and its PostgreSQL
  backend's from /proc), and times writing and hashing the same number of bytes alone;
- times PostgreSQL's own `COPY (SELECT ...) TO STDOUT` of the same rows and columns;
- times PostgreSQL building and COPYing the same JSON records itself (same_json_select:
  json_build_object / json_agg, one line per judged turn, with the server's settings and
  with JIT off), in rounds each right after an export of the same size, compares its bytes
  per record with the export's and its ~10k records with the export's as JSON values, and
  checks "export at or above COPY of the same JSON" (the best export's time / the best
  COPY's <= 1.0 at both sizes);
- times `reviews.dashboard.dashboard(samples=200)` overall and for one project (median of 3),
  with each query's share (from the aggregates, rebuilt after the data is built).

Targets (issue): >= 20,000 records/s at 100k, and flat memory: the 100k export's peak growth
is at most max(1.5 x, +30 MiB) the 10k export's (RSS and tracemalloc). Exits 1 when missed.
Options: --rebuild (drop and rebuild the data), --profile (cProfile of the ~10k export; also
printed when the speed target is missed).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import json
import os
import pstats
import random
import resource
import statistics
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from bench import _setup
from bench.copy_text import TESTING_AXIS, copy_into, row
from bench.repos_highlight import python_source

SEED = 20261126
TASKS = 50_000
TURNS_PER_TASK = 2
TURNS = TASKS * TURNS_PER_TASK
TASKS_PER_DAY = 100
LAST_DAY = date(2026, 11, 25)
FIRST_DAY = LAST_DAY - timedelta(days=TASKS // TASKS_PER_DAY - 1)
# Days FIRST_DAY+200 .. FIRST_DAY+249: 50 days x 100 tasks x 2 turns = 10,000 judged turns.
SLICE = (FIRST_DAY + timedelta(days=200), FIRST_DAY + timedelta(days=249))
DATA_MARK = f"bench.exports synthetic data v4, seed {SEED}"
CHUNK_TASKS = 2_000
TARGET_RECORDS_PER_S = 20_000
FLAT_RATIO = 1.5
FLAT_MIB = 30.0
DASHBOARD_RUNS = 3
FLAG_SECONDS = 2.0
SAME_JSON_ROUNDS = (3, 2)  # ~10k, 100k: rounds of export, COPY of the same JSON, jit off
SAME_SIZE_WITHIN = 0.20  # the same-JSON COPY's bytes per record against the export's


# --- Synthetic data -----------------------------------------------------------------------

_KINDS = {"bug_fix": 34, "feature": 24, "refactor": 12, "security_fix": 6, "tests": 10,
          "performance": 6, "docs": 5, "other": 3}  # fmt: skip
_VERBS = ["Fix", "Handle", "Guard against", "Add", "Refactor", "Speed up", "Document", "Test",
          "Harden", "Simplify", "Validate", "Cache", "Retry", "Stream", "Paginate"]  # fmt: skip
_THINGS = ["the empty input case", "timeouts on slow networks", "unicode file names",
           "the pagination cursor", "concurrent writes", "the config loader", "retry backoff",
           "large uploads", "the date parser", "error messages", "the CLI flags",
           "the cache invalidation", "the session expiry", "negative offsets",
           "the JSON decoder", "missing environment variables", "the rate limiter",
           "the webhook signature check", "the plugin registry", "memory use on big files"]  # fmt: skip
_WHY = ["it currently crashes with a KeyError", "users hit it in production every day",
        "the test suite is flaky because of it", "it returns the wrong status code",
        "it silently drops records", "it blocks the event loop", "it leaks file handles",
        "the behaviour is undocumented", "a security review flagged it",
        "it is quadratic in the number of items"]  # fmt: skip
_FOLLOW = ["Keep the public API unchanged and add a regression test.",
           "Now also cover the error path and log a useful message.",
           "Good, but please avoid the extra dependency; use the standard library.",
           "Split the change so the refactor and the fix are separate hunks.",
           "Add type hints and a docstring to the new function.",
           "The change breaks Python 3.10; keep it compatible.",
           "Please make the limit configurable instead of a constant."]  # fmt: skip
_EXPLAIN = ["I changed {f} so that {t} is handled before the value is used.",
            "The root cause is in {f}: {t} was never checked, so the later lookup failed.",
            "This keeps the existing behaviour for valid input and only adds a guard.",
            "I added a small helper instead of repeating the check in every caller.",
            "The new test in tests/test_{n}.py reproduces the failure and passes with the fix.",
            "I did not touch the public API; callers keep working unchanged.",
            "Errors are now logged with the offending value, which makes debugging easier.",
            "The loop now stops at the configured limit instead of reading everything.",
            "I replaced the manual parsing with the standard library, which handles {t}.",
            "Performance is unchanged for the common case; the guard is one comparison.",
            "Note that {f} is also used by the CLI, so I kept its signature.",
            "The diff below is against the pinned commit and applies with git apply."]  # fmt: skip
_JUDGE_WIN = ["handles {t} correctly and adds a test", "is the smaller, cleaner change",
              "keeps the API stable and explains the fix well", "covers the error path",
              "fixes the root cause instead of the symptom"]  # fmt: skip
_JUDGE_LOSE = ["misses {t}", "breaks an existing caller", "adds an unneeded dependency",
               "has no test and a confusing explanation", "does not apply cleanly"]  # fmt: skip
_ENDPOINTS = [  # name, provider, model_id, base_url, latent strength
    ("claude-sonnet", "anthropic", "claude-sonnet-4-5", "", 0.55),
    ("gpt-coder", "openai", "gpt-5-codex", "", 0.35),
    ("qwen3-coder", "openai", "Qwen/Qwen3-Coder-30B-A3B-Instruct", "http://vllm.internal:8000/v1", 0.0),
    ("deepseek-coder", "openai", "deepseek-coder-v2", "https://api.deepseek.com/v1", -0.1),
]  # fmt: skip


@dataclass
class _Pools:
    code: list[str]
    paths: list[str]
    sentences: list[str]


def _pools(rng: random.Random) -> _Pools:
    code = [line for line in python_source(8000, SEED).split("\n") if line.strip()]
    dirs = ["src/app", "src/app/core", "src/app/api", "lib", "pkg/server", "tests", "cli"]
    stems = ["config", "client", "parser", "cache", "models", "views", "utils", "session",
             "storage", "auth", "limits", "retry", "cursor", "upload", "events", "registry"]  # fmt: skip
    paths = sorted({f"{rng.choice(dirs)}/{rng.choice(stems)}.py" for _ in range(400)})
    sentences = []
    for _ in range(3000):
        sentences.append(
            rng.choice(_EXPLAIN).format(
                f=f"`{rng.choice(paths)}`", t=rng.choice(_THINGS), n=rng.choice(stems)
            )
        )
    return _Pools(code=code, paths=paths, sentences=sentences)


def _diff(rng: random.Random, pools: _Pools) -> str:
    """A unified diff of about 20 to 60 lines (headers included) over one or two files."""
    target = rng.randint(24, 60)
    files = 2 if target >= 40 and rng.random() < 0.35 else 1
    out: list[str] = []
    code = pools.code
    for _ in range(files):
        path = rng.choice(pools.paths)
        out += [f"diff --git a/{path} b/{path}", f"--- a/{path}", f"+++ b/{path}"]
        budget = target // files - 3
        start_line = rng.randint(1, 400)
        # A hunk is its header, 3 + 3 context lines and the changed lines.
        while budget >= 8:
            room = budget - 7
            removed = rng.randint(0, min(4, room - 1))
            added = rng.randint(1, min(8, room - removed))
            at = rng.randrange(len(code) - 20)
            before = code[at : at + 3]
            gone = code[at + 3 : at + 3 + removed]
            after = code[at + 3 + removed : at + 6 + removed]
            out.append(
                f"@@ -{start_line},{6 + removed} +{start_line},{6 + added} @@ "
                f"def {rng.choice(('load', 'parse', 'run', 'check', 'save'))}():"
            )
            out += [f" {line}" for line in before]
            out += [f"-{line}" for line in gone]
            out += [f"+{line}" for line in rng.choices(code, k=added)]
            out += [f" {line}" for line in after]
            budget -= 7 + removed + added
            start_line += rng.randint(20, 80)
    return "\n".join(out) + "\n"


def _explanation(rng: random.Random, pools: _Pools) -> str:
    target = rng.randint(300, 800)
    sentences = pools.sentences
    at, step = rng.randrange(len(sentences)), rng.randint(1, 50)
    parts: list[str] = []
    size = 0
    while size < target:
        sentence = sentences[at % len(sentences)]
        parts.append(sentence)
        size += len(sentence) + 1
        at += step
    text = " ".join(parts)
    return text if len(text) <= 800 else text[: text.rfind(".", 0, 800) + 1]


def _scores(rng: random.Random, axes: list[str], preference: int) -> dict:
    lead = -preference / 2  # > 0 when A is preferred
    a = {k: min(5, max(1, round(3.3 + lead / 2 + rng.gauss(0, 0.8)))) for k in axes}
    b = {k: min(5, max(1, round(3.3 - lead / 2 + rng.gauss(0, 0.8)))) for k in axes}
    return {"A": a, "B": b}


def _preference(rng: random.Random, strength_a: float, strength_b: float, lean: float) -> int:
    if rng.random() < 0.12:
        return 0
    p_a = 1 / (1 + pow(2.718281828, -(strength_a - strength_b + lean)))
    size = rng.choices((1, 2, 3), weights=(45, 35, 20))[0]
    return -size if rng.random() < p_a else size


def _justification(rng: random.Random, preference: int) -> str:
    win, lose = ("A", "B") if preference < 0 else ("B", "A")
    if preference == 0:
        text = (
            f"Both candidates {rng.choice(_JUDGE_WIN).format(t=rng.choice(_THINGS))}; neither "
            f"{rng.choice(_JUDGE_LOSE).format(t=rng.choice(_THINGS))}, so I rate them the same; "
            "either could be merged."
        )
    else:
        text = (
            f"{win} {rng.choice(_JUDGE_WIN).format(t=rng.choice(_THINGS))}, while {lose} "
            f"{rng.choice(_JUDGE_LOSE).format(t=rng.choice(_THINGS))}. I would merge {win} "
            "after a short review; the other needs another round."
        )
    return text[:200]


def _data_present() -> bool:
    from tasks.models import Candidate, Judgement, Project, Task, Turn

    return (
        Project.objects.filter(guidelines=DATA_MARK).count() == 2
        and Task.objects.filter(status=Task.Status.ACCEPTED).count() == TASKS
        and Turn.objects.count() == TURNS
        and Judgement.objects.count() == TURNS
        and Candidate.objects.count() == 2 * TURNS
    )


def build_data() -> None:
    """Delete every row of the benchmark's tables and write the synthetic data (COPY)."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from repos.models import Repository
    from tasks.models import ModelEndpoint, Project, ProjectEndpoint
    from tasks.rubric import DEFAULT_RUBRIC_AXES, default_rubric_axes
    from tasks.services import judgement_warnings

    if "bench" not in connection.settings_dict["NAME"]:
        raise SystemExit("refusing to empty a database whose name does not contain 'bench'")
    rng = random.Random(SEED)  # noqa: S311 - synthetic data, not security
    pools = _pools(rng)
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE reviews_review, tasks_submission, tasks_judgement, tasks_candidate, "
            "tasks_turn, tasks_task, tasks_projectendpoint, tasks_project, tasks_modelendpoint, "
            "repos_repository, "
            "auth_user RESTART IDENTITY CASCADE"
        )
    stamp = datetime.combine(FIRST_DAY - timedelta(days=30), dtime(9), tzinfo=UTC)
    people = (
        [User(username="bench-admin", is_staff=True, is_superuser=True)]
        + [User(username=f"contractor{i:02d}") for i in range(1, 13)]
        + [User(username=f"reviewer{i}") for i in range(1, 5)]
    )
    for person in people:
        person.set_unusable_password()
    users = User.objects.bulk_create(people)
    contractors, reviewers = users[1:13], users[13:]
    # A few contractors lean towards slot A (position bias for the dashboard to find).
    lean = {u.pk: (0.4 if i % 5 == 0 else 0.0) for i, u in enumerate(contractors)}
    endpoints = ModelEndpoint.objects.bulk_create(
        [
            ModelEndpoint(name=name, provider=provider, model_id=model, base_url=base,
                          api_key_env=f"{name.upper().replace('-', '_')}_KEY",
                          parameters={"temperature": 0.2, "max_tokens": 8192})
            for name, provider, model, base, _ in _ENDPOINTS
        ]
    )  # fmt: skip
    strength = {e.pk: spec[4] for e, spec in zip(endpoints, _ENDPOINTS, strict=True)}
    projects = Project.objects.bulk_create(
        [
            Project(name="Web services (bench)", guidelines=DATA_MARK,
                    rubric_axes=default_rubric_axes(), max_turns=3),
            Project(name="Systems code (bench)", guidelines=DATA_MARK,
                    rubric_axes=[*[dict(a) for a in DEFAULT_RUBRIC_AXES], TESTING_AXIS],
                    max_turns=3),
        ]
    )  # fmt: skip
    project_axes = {p.pk: [a["key"] for a in p.rubric_axes] for p in projects}
    project_endpoints = {
        projects[0].pk: (endpoints[0].pk, endpoints[1].pk),
        projects[1].pk: (endpoints[2].pk, endpoints[3].pk),
    }
    ProjectEndpoint.objects.bulk_create(
        ProjectEndpoint(project_id=project_id, endpoint_id=endpoint_id)
        for project_id, pair in project_endpoints.items()
        for endpoint_id in pair
    )
    repos = Repository.objects.bulk_create(
        [
            Repository(
                full_name=g["full_name"], clone_url=g["clone_url"], html_url=g["html_url"],
                default_branch=g["default_branch"], language=g["language"] or "",
                stars=g["stargazers_count"], description=g["description"] or "",
                license=(g["license"] or {}).get("spdx_id") or "", topics=g["topics"],
                size_kb=g["size"], pushed_at=datetime.fromisoformat(g["pushed_at"]),
                search_text=Repository.search_text_for(
                    g["full_name"], g["description"] or "", g["topics"]),
                topics_text=Repository.topics_text_for(g["topics"]),
                clone_status="READY", cloned_at=stamp,
            )
            for g in _setup.github_repositories(60, seed=SEED)
        ]
    )  # fmt: skip
    repo_weights = _setup.zipf_cum_weights(len(repos), 0.8, 2)
    kinds, kind_weights = list(_KINDS), list(_KINDS.values())

    task_cols = ("id, created_at, updated_at, base_ref, commit_sha, title, kind, status, round, "
                 "submitted_at, accepted_at, contractor_id, project_id, repository_id, "
                 "active_seconds, last_heartbeat_at, focus_files, acceptance_tests, "
                 "first_endpoint_id, second_endpoint_id")  # fmt: skip
    turn_cols = "id, created_at, updated_at, number, prompt, task_id, active_seconds"
    cand_cols = ("id, created_at, updated_at, slot, status, explanation, diff, error, attempts, "
                 "started_at, finished_at, endpoint_id, turn_id, job_id, applies_cleanly, "
                 "apply_error, is_truncated, raw_answer, input_tokens, output_tokens, "
                 "failure_detail")  # fmt: skip
    judg_cols = ("id, created_at, updated_at, round, preference, scores, justification, "
                 "turn_id, warnings, minhash")  # fmt: skip
    review_cols = ("id, created_at, updated_at, round, decision, feedback, reviewer_id, "
                   "task_id, claimed_at, rejects_task")  # fmt: skip
    sub_cols = "id, round, active_seconds, turn_count, created_at, submitted_by_id, task_id"
    sec = timedelta(seconds=1)
    with transaction.atomic(), connection.cursor() as cur:
        for first in range(1, TASKS + 1, CHUNK_TASKS):
            tasks, turns, cands, judgs, reviews, subs = [], [], [], [], [], []
            for task_id in range(first, min(first + CHUNK_TASKS, TASKS + 1)):
                index = task_id - 1
                day = FIRST_DAY + timedelta(days=index // TASKS_PER_DAY)
                created = datetime.combine(day, dtime(7), tzinfo=UTC) + timedelta(
                    minutes=5 * (index % TASKS_PER_DAY), seconds=rng.randint(0, 240)
                )
                project = projects[0] if rng.random() < 0.6 else projects[1]
                axes = project_axes[project.pk]
                repo = repos[rng.choices(range(len(repos)), cum_weights=repo_weights)[0]]
                contractor = rng.choice(contractors)
                reviewer = rng.choice(reviewers)
                kind = rng.choices(kinds, weights=kind_weights)[0]
                thing = rng.choice(_THINGS)
                title = f"{rng.choice(_VERBS)} {thing}"[:200]
                clock = created
                task_active = 0
                for number in (1, 2):
                    turn_id = 2 * (task_id - 1) + number
                    turn_created = clock + 5 * sec
                    if number == 1:
                        path = rng.choice(pools.paths)
                        prompt = (
                            f"{title} in {path}: {rng.choice(_WHY)}. "
                            f"{rng.choice(_FOLLOW)} {rng.choice(_WHY).capitalize()} when "
                            f"{rng.choice(_THINGS)} is involved."
                        )
                    else:
                        prompt = f"{rng.choice(_FOLLOW)} {rng.choice(_FOLLOW)}"
                    turn_active = rng.randint(120, 1500)
                    task_active += turn_active
                    pair = list(project_endpoints[project.pk])
                    rng.shuffle(pair)
                    finished_last = turn_created
                    for slot_no, (slot, endpoint_id) in enumerate(zip("AB", pair, strict=True)):
                        diff = _diff(rng, pools)
                        explanation = _explanation(rng, pools)
                        started = turn_created + sec
                        finished = started + timedelta(seconds=rng.uniform(20, 150))
                        finished_last = max(finished_last, finished)
                        clean = rng.random() < 0.88
                        cands.append(row(
                            2 * (turn_id - 1) + slot_no + 1, turn_created, finished, slot,
                            "SUCCEEDED", explanation, diff, "", 2 if rng.random() < 0.03 else 1,
                            started, finished, endpoint_id, turn_id, f"{rng.getrandbits(128):032x}",
                            clean, "" if clean else
                            f"error: patch failed: {pools.paths[0]}:42\nerror: patch does not apply",
                            rng.random() < 0.01,
                            f"{explanation}\n\n```diff\n{diff}```",
                            # Prompt with repository context; the answer at ~3.6 chars/token.
                            rng.randint(4_000, 30_000), (len(explanation) + len(diff)) * 10 // 36,
                            "",
                        ))  # fmt: skip
                    preference = _preference(
                        rng, strength[pair[0]], strength[pair[1]], lean[contractor.pk]
                    )
                    scores = _scores(rng, axes, preference)
                    judged = finished_last + timedelta(seconds=turn_active)
                    judgs.append(row(
                        turn_id, judged, judged, 1, preference, json.dumps(scores),
                        _justification(rng, preference), turn_id,
                        json.dumps(judgement_warnings(preference=preference, scores=scores)),
                        "",  # no signature (minhash, bytea)
                    ))  # fmt: skip
                    turns.append(
                        row(turn_id, turn_created, judged, number, prompt, task_id, turn_active)
                    )
                    clock = judged
                submitted = clock + timedelta(seconds=rng.randint(30, 600))
                claimed = submitted + timedelta(minutes=rng.randint(5, 600))
                accepted = claimed + timedelta(minutes=rng.randint(3, 25))
                tasks.append(row(
                    task_id, created, accepted, repo.default_branch,
                    f"{rng.getrandbits(160):040x}", title, kind, "ACCEPTED", 1, submitted,
                    accepted, contractor.pk, project.pk, repo.pk, task_active, submitted,
                    "[]", "[]", *sorted(project_endpoints[project.pk]),
                ))  # fmt: skip
                reviews.append(row(
                    task_id, accepted, accepted, 1, "ACCEPT",
                    "" if rng.random() < 0.7 else "Good work; the justification is clear.",
                    reviewer.pk, task_id, claimed, False,
                ))  # fmt: skip
                subs.append(row(task_id, 1, task_active, 2, submitted, contractor.pk, task_id))
            copy_into(cur, "tasks_task", task_cols, tasks)
            copy_into(cur, "tasks_turn", turn_cols, turns)
            copy_into(cur, "tasks_candidate", cand_cols, cands)
            copy_into(cur, "tasks_judgement", judg_cols, judgs)
            copy_into(cur, "reviews_review", review_cols, reviews)
            copy_into(cur, "tasks_submission", sub_cols, subs)
        for table in ("tasks_task", "tasks_turn", "tasks_candidate", "tasks_judgement",
                      "reviews_review", "tasks_submission"):  # fmt: skip
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - fixed names
                f"(SELECT max(id) FROM {table}))"
            )
        cur.execute(
            "UPDATE repos_repository r SET task_count = "
            "(SELECT count(*) FROM tasks_task t WHERE t.repository_id = r.id)"
        )


def ensure_data(*, rebuild: bool) -> tuple[bool, float]:
    """(built now, seconds): reuse the data when it is all there, else build it."""
    from django.db import connection

    from reviews.aggregates import aggregates_rebuild
    from reviews.models import ProjectDecisionCount

    if not rebuild and _data_present():
        if not ProjectDecisionCount.objects.exists():
            # Data built before the dashboard read aggregates (issue 19).
            aggregates_rebuild()
        return False, 0.0
    start = time.perf_counter()
    build_data()
    with connection.cursor() as cur:
        for table in ("tasks_task", "tasks_turn", "tasks_candidate", "tasks_judgement",
                      "reviews_review", "tasks_submission", "repos_repository"):  # fmt: skip
            cur.execute(f"VACUUM ANALYZE {table}")
    # Written behind review_decide's back, as a backfill: the dashboard reads the aggregates.
    aggregates_rebuild()
    if not _data_present():
        raise SystemExit("the data was built but does not have the expected counts")
    return True, time.perf_counter() - start


# --- Measuring ----------------------------------------------------------------------------


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


@dataclass
class ExportRun:
    label: str
    records: int
    size: int
    sha: str
    seconds: float
    rss_growth_mib: float | None = None
    peak_rss_mib: float | None = None
    traced_peak_mib: float | None = None
    user_s: float = 0.0
    sys_s: float = 0.0
    pg_cpu_s: float | None = None

    @property
    def cores_busy(self) -> float:
        """CPU-seconds of this process and its PostgreSQL backend per second of the export."""
        return (self.user_s + self.sys_s + (self.pg_cpu_s or 0.0)) / self.seconds

    @property
    def per_second(self) -> float:
        return self.records / self.seconds


def _backend_cpu_s() -> float | None:
    """CPU-seconds used so far by this connection's PostgreSQL backend, when it runs on this
    machine and /proc shows it (else None)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_export(label: str, filters, *, trace: bool) -> ExportRun:
    from django.db import reset_queries

    from reviews.export_job_services import write_export

    reset_queries()
    gc.collect()
    can_reset = _reset_peak_rss()
    rss_before = _status_kib("VmRSS")
    maxrss_before = _setup.peak_rss_mib()
    if trace:
        tracemalloc.start()
    pg_before = _backend_cpu_s()
    with tempfile.TemporaryFile() as out:
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        summary = write_export(out, fmt="native", filters=filters)
        records, size, sha = summary.records, summary.size_bytes, summary.sha256
        out.flush()
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_SELF)
    pg_after = _backend_cpu_s()
    traced = None
    if trace:
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    hwm = _status_kib("VmHWM")
    if can_reset and hwm is not None and rss_before is not None:
        growth, peak = (hwm - rss_before) / 1024, hwm / 1024
    else:  # ru_maxrss cannot be reset: only growth beyond the earlier peak shows
        peak = _setup.peak_rss_mib()
        growth = peak - maxrss_before
    return ExportRun(
        label, records, size, sha, seconds, growth, peak, traced,
        user_s=usage.ru_utime - usage_before.ru_utime,
        sys_s=usage.ru_stime - usage_before.ru_stime,
        pg_cpu_s=None if pg_before is None or pg_after is None else pg_after - pg_before,
    )  # fmt: skip


def copy_rows(filters_sql: str, params: list) -> tuple[int, int, float]:
    """PostgreSQL's COPY of the columns a native record reads, same rows and order:
    (rows, bytes, seconds)."""
    sql = f"""
          SELECT t.id, tu.number, p.name, r.full_name, r.clone_url, t.commit_sha, t.base_ref,
                 t.title, t.kind, tu.prompt, tu.active_seconds,
                 ea.name, ea.provider, ea.model_id, ca.explanation, ca.diff, ca.applies_cleanly,
                 ca.is_truncated, ca.attempts, ca.started_at, ca.finished_at,
                 eb.name, eb.provider, eb.model_id, cb.explanation, cb.diff, cb.applies_cleanly,
                 cb.is_truncated, cb.attempts, cb.started_at, cb.finished_at,
                 j.scores, j.preference, j.justification, j.warnings, j.round,
                 t.active_seconds, t.contractor_id, t.round, t.status, t.created_at,
                 t.submitted_at, t.accepted_at,
                 (SELECT json_agg(json_build_object('round', rv.round, 'decision', rv.decision,
                                                    'reviewer_id', rv.reviewer_id)
                                  ORDER BY rv.round)
                    FROM reviews_review rv WHERE rv.task_id = t.id) AS reviews
            FROM tasks_task t
            JOIN tasks_project p ON p.id = t.project_id
            JOIN repos_repository r ON r.id = t.repository_id
            JOIN tasks_turn tu ON tu.task_id = t.id
            JOIN LATERAL (SELECT * FROM tasks_judgement j WHERE j.turn_id = tu.id
                          ORDER BY j.round DESC LIMIT 1) j ON true
            JOIN tasks_candidate ca ON ca.turn_id = tu.id AND ca.slot = 'A'
            JOIN tasks_modelendpoint ea ON ea.id = ca.endpoint_id
            JOIN tasks_candidate cb ON cb.turn_id = tu.id AND cb.slot = 'B'
            JOIN tasks_modelendpoint eb ON eb.id = cb.endpoint_id
           WHERE t.status = 'ACCEPTED' {filters_sql}
           ORDER BY t.id, tu.number
    """  # noqa: S608 - filters_sql is one of two fixed fragments
    return _copy_out(sql, params)


def _answer_sql(candidate: str) -> str:
    """prompting.assistant_text of a tasks_candidate row, in SQL."""
    return f"{candidate}.explanation || E'\\n\\n```diff\\n' || {candidate}.diff || '```'"


def _label_sql(preference: str) -> str:
    """The Preference label of a preference (-3 .. 3), in SQL."""
    from tasks.models import Preference

    labels = ", ".join("'" + label.replace("'", "''") + "'" for _, label in Preference.choices)
    return f"(ARRAY[{labels}])[{preference} + 4]"


def same_json_select(filters_sql: str) -> str:
    """A SELECT of one `json` column: the native record of each judged turn (see
    reviews.exports._task_records, _chunk_records and reviews.quality_export.record_quality),
    built by PostgreSQL with the same keys in the same order, the same nesting and the same
    values, for the same rows in the same order.

    Everything the native record computes in Python has an SQL equivalent here: the
    candidates' `answer` and the conversation's assistant turns (prompting.assistant_text of
    the slot prompting.continuing_slot picks), `seconds`, `criterion_preferences`,
    `preference_label`, `preferred_slot`, `model_prompt_status`, `evidence` (export_evidence),
    `evidence_agrees` and the quality block (second judgements in the turn's slots). Where a
    candidate has several evidence runs, the latest is taken (the export keeps whichever its
    unordered query returns last); the bench data has none. Left as PostgreSQL writes them:
    `json` spacing ("key" : value), timestamps in its ISO format, `seconds` as a numeric with
    3 decimals; and COPY's text format doubles every backslash (each JSON escape).
    """
    score = """CASE WHEN er.status = 'SUCCEEDED' AND jsonb_typeof(er.verdict) = 'object'
                     AND coalesce((er.verdict->>'applied')::boolean, false)
                     AND jsonb_typeof(er.verdict->'fixes') = 'number'
                    THEN (er.verdict->>'fixes')::numeric - (er.verdict->>'breaks')::numeric END"""
    slot_total = (
        "(SELECT coalesce(sum(v::numeric), 0) FROM jsonb_each_text(pj.scores->'{}') x(k, v))"
    )
    return f"""
      SELECT json_build_object(
        'schema_version', {_native_schema_version()},
        'task_id', t.id,
        'turn', tu.number,
        'project', p.name,
        'repository', r.full_name,
        'clone_url', r.clone_url,
        'commit_sha', t.commit_sha,
        'base_ref', t.base_ref,
        'task_title', t.title,
        'task_kind', t.kind,
        'focus_files', t.focus_files,
        'prompt', tu.prompt,
        'conversation', conv.messages,
        'model_prompt', CASE WHEN c.prompt_status = 'recorded' THEN
                          (SELECT sp.messages FROM tasks_sentprompt sp WHERE sp.id = c.prompt_id)
                        END,
        'model_prompt_status', c.prompt_status,
        'candidates', coalesce(c.slots, '{{}}'),
        'pair', json_build_array(e1.name, e2.name),
        'identical_candidates', tu.has_identical_candidates,
        'scores', j.scores,
        'criterion_preferences', (
          SELECT coalesce(json_object_agg(a.k, CASE
                   WHEN a.v::numeric > (j.scores->'B'->>a.k)::numeric THEN 'A'
                   WHEN a.v::numeric < (j.scores->'B'->>a.k)::numeric THEN 'B' END), '{{}}')
            FROM jsonb_each_text(j.scores->'A') a(k, v) WHERE j.scores->'B' ? a.k),
        'preference', j.preference,
        'preference_label', {_label_sql("j.preference")},
        'preferred_slot', CASE WHEN j.preference < 0 THEN 'A' WHEN j.preference > 0 THEN 'B' END,
        'justification', j.justification,
        'consistency_warnings', j.warnings,
        'round_judged', j.round,
        'judgement_history', (
          SELECT json_agg(json_build_object(
                   'round', h.round, 'preference', h.preference,
                   'preference_label', {_label_sql("h.preference")}, 'scores', h.scores,
                   'justification', h.justification, 'consistency_warnings', h.warnings)
                 ORDER BY h.round)
            FROM tasks_judgement h WHERE h.turn_id = tu.id),
        'turn_active_seconds', tu.active_seconds,
        'task_active_seconds', t.active_seconds,
        'contractor_id', t.contractor_id,
        'reviewer_ids', rv.reviewer_ids,
        'rounds', t.round,
        'reviews', rv.reviews,
        'status', t.status,
        'created_at', t.created_at,
        'submitted_at', t.submitted_at,
        'accepted_at', t.accepted_at,
        'evidence_agrees', CASE
          WHEN c.score_a IS NULL OR c.score_b IS NULL THEN NULL
          WHEN c.score_a = c.score_b THEN CASE WHEN j.preference = 0 THEN true END
          WHEN j.preference = 0 THEN false
          ELSE (j.preference > 0) = (c.score_b > c.score_a) END,
        'quality', json_build_object(
          'agreement_group', CASE WHEN q.second IS NOT NULL THEN 'turn-' || tu.id END,
          'second_judgements', coalesce(q.second, '[]'),
          'gold', (SELECT json_build_object('expected', g.expected,
                                            'score_ranges', g.score_ranges,
                                            'is_active', g.is_active)
                     FROM reviews_goldturn g WHERE g.turn_id = tu.id),
          'flags', coalesce((SELECT json_agg(f.kind ORDER BY f.kind)
                               FROM reviews_submissionflag f
                               JOIN tasks_submission s ON s.id = f.submission_id
                              WHERE s.task_id = t.id AND s.round = j.round), '[]'))
      )
        FROM tasks_task t
        JOIN tasks_project p ON p.id = t.project_id
        JOIN repos_repository r ON r.id = t.repository_id
        JOIN tasks_modelendpoint e1 ON e1.id = t.first_endpoint_id
        JOIN tasks_modelendpoint e2 ON e2.id = t.second_endpoint_id
        JOIN tasks_turn tu ON tu.task_id = t.id
        JOIN LATERAL (SELECT * FROM tasks_judgement j WHERE j.turn_id = tu.id
                      ORDER BY j.round DESC LIMIT 1) j ON true
        CROSS JOIN LATERAL (
          SELECT coalesce(json_agg(json_build_object('round', rv.round, 'decision', rv.decision,
                                                     'reviewer_id', rv.reviewer_id)
                                   ORDER BY rv.round), '[]') AS reviews,
                 coalesce(json_agg(DISTINCT rv.reviewer_id ORDER BY rv.reviewer_id), '[]')
                   AS reviewer_ids
            FROM reviews_review rv WHERE rv.task_id = t.id) rv
        CROSS JOIN LATERAL (
          -- Each judged turn's prompt up to this one, each followed (before this one) by the
          -- answer the conversation continued from.
          SELECT json_agg(m.message ORDER BY m.number, m.part) AS messages FROM (
            SELECT pt.number, 0 AS part,
                   json_build_object('role', 'user', 'content', pt.prompt) AS message
              FROM tasks_turn pt
             WHERE pt.task_id = t.id AND pt.number <= tu.number
               AND EXISTS (SELECT FROM tasks_judgement pj WHERE pj.turn_id = pt.id)
            UNION ALL
            SELECT pt.number, 1,
                   json_build_object('role', 'assistant', 'content', {_answer_sql("pc")})
              FROM tasks_turn pt
              JOIN LATERAL (SELECT pj.preference, pj.scores FROM tasks_judgement pj
                             WHERE pj.turn_id = pt.id ORDER BY pj.round DESC LIMIT 1) pj ON true
              JOIN tasks_candidate pc ON pc.turn_id = pt.id AND pc.slot = CASE
                     WHEN pj.preference < 0 THEN 'A' WHEN pj.preference > 0 THEN 'B'
                     WHEN {slot_total.format("B")} > {slot_total.format("A")} THEN 'B'
                     ELSE 'A' END
             WHERE pt.task_id = t.id AND pt.number < tu.number) m) conv
        CROSS JOIN LATERAL (
          SELECT json_object_agg(cd.slot, json_build_object(
                   'endpoint', ce.name, 'provider', ce.provider, 'model_id', ce.model_id,
                   'explanation', cd.explanation, 'diff', cd.diff,
                   'answer', {_answer_sql("cd")},
                   'applies_cleanly', cd.applies_cleanly, 'is_truncated', cd.is_truncated,
                   'attempts', cd.attempts,
                   'seconds', coalesce(round(extract(epoch FROM cd.finished_at - cd.started_at),
                                             3), 0.0),
                   'input_tokens', cd.input_tokens, 'output_tokens', cd.output_tokens,
                   'line_comments', coalesce(
                     (SELECT json_agg(json_build_object('path', lc.path, 'side', lc.side,
                                                        'line', lc.line,
                                                        'end_line', lc.end_line,
                                                        'text', lc.text)
                                      ORDER BY lc.path, lc.side, lc.line, lc.id)
                        FROM reviews_linecomment lc
                       WHERE lc.candidate_id = cd.id AND lc.role = 'contractor'), '[]'),
                   'evidence', ev.record) ORDER BY cd.slot) AS slots,
                 max(ev.score) FILTER (WHERE cd.slot = 'A') AS score_a,
                 max(ev.score) FILTER (WHERE cd.slot = 'B') AS score_b,
                 CASE WHEN count(*) = 0 OR bool_or(cd.sent_prompt_id IS NULL) THEN 'not recorded'
                      WHEN count(DISTINCT cd.sent_prompt_id) > 1 THEN 'differs'
                      ELSE 'recorded' END AS prompt_status,
                 min(cd.sent_prompt_id) AS prompt_id
            FROM tasks_candidate cd
            JOIN tasks_modelendpoint ce ON ce.id = cd.endpoint_id
            LEFT JOIN LATERAL (
              SELECT CASE WHEN er.status = 'SUCCEEDED' AND jsonb_typeof(er.verdict) = 'object'
                     THEN json_build_object(
                       'status', er.status, 'recipe', er.recipe,
                       'recipe_hash', er.recipe_digest, 'error', er.error,
                       'applied', er.verdict->'applied', 'fixes', er.verdict->'fixes',
                       'breaks', er.verdict->'breaks', 'checks', er.verdict->'checks',
                       'acceptance', er.verdict->'acceptance',
                       'acceptance_passed', er.verdict->'acceptance_passed',
                       'acceptance_total', er.verdict->'acceptance_total',
                       'clean', er.is_clean)
                     ELSE json_build_object(
                       'status', er.status, 'recipe', er.recipe,
                       'recipe_hash', er.recipe_digest, 'error', er.error, 'applied', NULL)
                     END AS record,
                     {score} AS score
                FROM tasks_evidencerun er WHERE er.candidate_id = cd.id
               ORDER BY er.id DESC LIMIT 1) ev ON true
           WHERE cd.turn_id = tu.id) c
        CROSS JOIN LATERAL (
          SELECT json_agg(json_build_object(
                   'contractor_id', jt.contractor_id,
                   'preference', CASE WHEN jt.swapped THEN -jt.preference ELSE jt.preference END,
                   'scores', CASE WHEN jt.swapped
                               THEN jsonb_build_object('A', coalesce(jt.scores->'B', '{{}}'),
                                                       'B', coalesce(jt.scores->'A', '{{}}'))
                               ELSE coalesce(jt.scores, '{{}}') END,
                   'justification', jt.justification,
                   'submitted_at', jt.submitted_at,
                   'is_gold', jt.gold_id IS NOT NULL)
                 ORDER BY jt.submitted_at, jt.id) AS second
            FROM reviews_judgingtask jt
           WHERE jt.turn_id = tu.id AND jt.status = 'SUBMITTED') q
       WHERE t.status = 'ACCEPTED' {filters_sql}
       ORDER BY t.id, tu.number
    """  # noqa: S608 - filters_sql is one of two fixed fragments


def _native_schema_version() -> int:
    from reviews.exports import NATIVE_SCHEMA_VERSION

    return NATIVE_SCHEMA_VERSION


def copy_same_json(filters_sql: str, params: list, *, jit: bool) -> tuple[int, int, float]:
    """PostgreSQL's COPY of the native records it builds itself (same_json_select), one line
    per judged turn: (rows, bytes, seconds). With jit=False, for this COPY only, `SET jit =
    off`: with the server's default (on), this query's plan costs enough for PostgreSQL to
    compile it first, about 1 s here whatever the size."""
    from django.db import connection

    if jit:
        return _copy_out(same_json_select(filters_sql), params)
    with connection.cursor() as cur:
        cur.execute("SET jit = off")
    try:
        return _copy_out(same_json_select(filters_sql), params)
    finally:
        with connection.cursor() as cur:
            cur.execute("RESET jit")


def _copy_out(select: str, params: list) -> tuple[int, int, float]:
    """`COPY (select) TO STDOUT` into a temporary file with copy_expert: (rows, bytes,
    seconds)."""
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection.cursor()
    try:
        query = raw.mogrify(f"COPY ({select}) TO STDOUT", params).decode()
        with tempfile.TemporaryFile() as out:
            start = time.perf_counter()
            raw.copy_expert(query, out)
            out.flush()
            seconds = time.perf_counter() - start
            size = out.tell()
        rows = raw.rowcount
    finally:
        raw.close()
    return rows, size, seconds


@dataclass
class SameJson:
    """Rounds of the native export and, right after it, the COPY of the same JSON with the
    server's settings and with JIT off: each round's three runs share the machine's load."""

    label: str
    exports: list[ExportRun] = field(default_factory=list)
    copies: dict[bool, list[tuple[int, int, float]]] = field(
        default_factory=lambda: {True: [], False: []}
    )  # jit -> (rows, bytes, seconds) of each round

    def floor(self, index: int) -> tuple[int, int, float]:
        """Round `index`'s faster COPY."""
        return min((self.copies[True][index], self.copies[False][index]), key=lambda c: c[2])

    @property
    def round_ratios(self) -> list[float]:
        return [e.seconds / self.floor(i)[2] for i, e in enumerate(self.exports)]

    @property
    def best_export(self) -> ExportRun:
        return min(self.exports, key=lambda e: e.seconds)

    @property
    def best_copy(self) -> tuple[int, int, float]:
        return min((self.floor(i) for i in range(len(self.exports))), key=lambda c: c[2])

    @property
    def ratio(self) -> float:
        """The best export's time / the best COPY's."""
        return self.best_export.seconds / self.best_copy[2]


def same_json_rounds(label: str, filters, filters_sql: str, params: list, rounds: int) -> SameJson:
    found = SameJson(label)
    for _ in range(rounds):
        found.exports.append(run_export(f"native export {label}", filters, trace=False))
        for jit in (True, False):
            found.copies[jit].append(copy_same_json(filters_sql, params, jit=jit))
    return found


def compare_same_json(filters, filters_sql: str, params: list) -> tuple[int, int, Counter]:
    """Untimed: the export's native records against same_json_select's, line by line, as
    JSON values. (records compared, records equal, differing key paths -> count); a key path
    "<order>" counts records whose top-level keys come in another order."""
    from django.db import connection, transaction

    from reviews.exports import export_lines

    differing: Counter = Counter()
    equal = compared = 0
    # A server-side cursor (its rows 500 at a time) lives in a transaction.
    with transaction.atomic(), connection.connection.cursor(name="bench_same_json") as raw:
        raw.itersize = 500
        raw.execute(raw.mogrify(same_json_select(filters_sql), params).decode())
        ours = (row[0] if isinstance(row[0], str) else json.dumps(row[0]) for row in raw)
        # Split on newlines only: a record may hold other line separators (U+2028).
        lines = (line for block in export_lines(fmt="native", filters=filters)
                 for line in block.split("\n")[:-1])  # fmt: skip
        for line, sql_text in zip(lines, ours, strict=True):
            native, built = json.loads(line), json.loads(sql_text)
            compared += 1
            paths = _differences(native, built, "")
            if list(native) != list(built):
                paths.append("<order>")
            differing.update(paths)
            equal += not paths
    return compared, equal, differing


def _differences(a, b, path: str) -> list[str]:
    """The key paths (list items as []) where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{path}.{k}" for k in a.keys() ^ b.keys()]
        for key in a.keys() & b.keys():
            found += _differences(a[key], b[key], f"{path}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for x, y in zip(a, b, strict=True) for p in _differences(x, y, f"{path}[]")]
    if a == b or (isinstance(a, str) and isinstance(b, str) and _same_instant(a, b)):
        return []
    return [path or "."]


def _same_instant(a: str, b: str) -> bool:
    """Two ISO timestamps of the same instant (PostgreSQL trims the microseconds' trailing
    zeros, Python's isoformat keeps six digits)."""
    try:
        return datetime.fromisoformat(a) == datetime.fromisoformat(b)
    except ValueError:
        return False


def write_and_hash_alone(size: int, *, block: int = 14 * 2**20) -> tuple[float, float]:
    """(seconds, CPU-seconds), the best of 2, to write `size` bytes to a temporary file and
    sha256 them, in blocks as the export writes them, with nothing else to do: a floor under
    any export of that many bytes on this machine."""
    data = memoryview(random.Random(SEED).randbytes(block))  # noqa: S311 - filler bytes
    best = (float("inf"), float("inf"))
    for _ in range(2):
        digest = hashlib.sha256()
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        with tempfile.TemporaryFile() as out:
            for done in range(0, size, block):
                piece = data[: min(block, size - done)]
                out.write(piece)
                digest.update(piece)
            out.flush()
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = min(best, (seconds, cpu))
    return best


def profile_export(filters, *, top: int = 25) -> None:
    """cProfile sees the calling thread only: reading the rows and waiting for the other two
    (encoding, writing)."""
    from reviews.export_job_services import write_export

    profiler = cProfile.Profile()
    with tempfile.TemporaryFile() as out:
        profiler.enable()
        write_export(out, fmt="native", filters=filters)
        profiler.disable()
    for order in ("tottime", "cumulative"):
        print(f"\ncProfile of the ~10k export (sorted by {order}, top {top}):")
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(order).print_stats(top)
        text = stream.getvalue()
        print(text[text.find("   ncalls") :].rstrip())


_DASHBOARD_QUERIES = {
    # In the order dashboard() runs them; the overall board also reads the projects' axes.
    True: ["endpoint names", "outcomes (BT, slot joins)", "position bias by contractor",
           "review counts", "rounds per task", "projects (axes)", "endpoint names",
           "score distribution A", "score distribution B", "applies cleanly", "submitted count",
           "median time on task", "submissions per day", "reviews per day"],
    False: ["endpoint names", "outcomes (BT, slot joins)", "position bias by contractor",
            "review counts", "rounds per task", "endpoint names", "score distribution A",
            "score distribution B", "applies cleanly", "submitted count", "median time on task",
            "submissions per day", "reviews per day"],
}  # fmt: skip


@dataclass
class BoardTiming:
    label: str
    runs: list[float]
    queries: list[tuple[str, float]] = field(default_factory=list)
    judged_turns: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def time_dashboard(label: str, project) -> BoardTiming:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reviews.dashboard import dashboard

    timing = BoardTiming(label, [])
    captured: list[list[dict]] = []
    for _ in range(DASHBOARD_RUNS):
        gc.collect()
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            board = dashboard(project=project, samples=200)
            timing.runs.append(time.perf_counter() - start)
        captured.append(list(ctx.captured_queries))
        timing.judged_turns = board.judged_turns
    # Per query: the median over the runs.
    names = _DASHBOARD_QUERIES[project is None]
    counts = {len(q) for q in captured}
    if counts == {len(names)}:
        timing.queries = [
            (name, statistics.median(float(run[i]["time"]) for run in captured))
            for i, name in enumerate(names)
        ]
    else:
        timing.queries = [
            (f"query {i + 1}: {captured[0][i]['sql'][:40]}",
             statistics.median(float(run[i]["time"]) for run in captured))
            for i in range(min(counts))
        ]  # fmt: skip
    return timing


def _flat(small: float, big: float) -> bool:
    return big <= max(FLAT_RATIO * small, small + FLAT_MIB)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the data")
    parser.add_argument("--profile", action="store_true", help="cProfile the ~10k export")
    args = parser.parse_args()

    _setup.setup(database_url="postgres://postgres@127.0.0.1:5432/marlin_bench_exports")
    from reviews.export_filters import ExportFilters
    from reviews.exports import judged_turn_count
    from tasks.models import Project

    print(f"machine:  {_setup.machine()}")
    print(f"database: {_setup.describe_database()}")
    built, build_s = ensure_data(rebuild=args.rebuild)
    if built:
        print(f"data:     built {TASKS:,} tasks / {TURNS:,} judged turns in {build_s:.1f} s")
    else:
        print(f"data:     reused {TASKS:,} tasks / {TURNS:,} judged turns (--rebuild to rebuild)")

    small = ExportFilters(submitted_from=SLICE[0], submitted_to=SLICE[1])
    full = ExportFilters()
    # Warm up (imports, the connection, the allocator's arenas) with 2,000 records, two full
    # chunks of 500 tasks, so the first measured export does not pay for the process's growth.
    warm_to = SLICE[0] + timedelta(days=9)
    run_export("warm-up", ExportFilters(submitted_from=SLICE[0], submitted_to=warm_to), trace=False)

    start = time.perf_counter()
    small_total = judged_turn_count(small)
    small_count_s = time.perf_counter() - start
    start = time.perf_counter()
    full_total = judged_turn_count(full)
    full_count_s = time.perf_counter() - start
    print(f"filters:  ~10k = submitted {SLICE[0]} .. {SLICE[1]} ({small_total:,} judged turns); "
          f"100k = ExportFilters() ({full_total:,})")  # fmt: skip

    timed_small = run_export("native export ~10k", small, trace=False)
    timed_full = run_export("native export 100k", full, trace=False)
    traced_small = run_export("native export ~10k (tracemalloc)", small, trace=True)
    traced_full = run_export("native export 100k (tracemalloc)", full, trace=True)

    day_from = datetime.combine(SLICE[0], dtime.min, tzinfo=UTC)
    day_to = datetime.combine(SLICE[1] + timedelta(days=1), dtime.min, tzinfo=UTC)
    small_sql = ("AND t.submitted_at >= %s AND t.submitted_at < %s", [day_from, day_to])
    copy_small = copy_rows(*small_sql)
    copy_full = copy_rows("", [])
    # The floor of the same JSON, in rounds next to the export (the load varies).
    load = os.getloadavg()
    same = [same_json_rounds("~10k", small, *small_sql, SAME_JSON_ROUNDS[0]),
            same_json_rounds("100k", full, "", [], SAME_JSON_ROUNDS[1])]  # fmt: skip
    compared, equal, differing = compare_same_json(small, *small_sql)
    floor_s, floor_cpu = write_and_hash_alone(timed_full.size)

    project = Project.objects.get(name="Web services (bench)")
    boards = [time_dashboard("dashboard, all projects", None),
              time_dashboard(f"dashboard, project {project.name!r}", project)]  # fmt: skip

    mib = 2**20
    print()
    _setup.print_table(
        ["run", "records", "MiB out", "seconds", "records/s", "peak RSS growth MiB",
         "peak RSS MiB", "tracemalloc peak MiB"],
        [
            [r.label, r.records, r.size / mib, r.seconds, round(r.per_second),
             r.rss_growth_mib, r.peak_rss_mib, "" if r.traced_peak_mib is None
             else r.traced_peak_mib]
            for r in (timed_small, timed_full, traced_small, traced_full)
        ]
        + [
            ["COPY (SELECT ...) ~10k", copy_small[0], copy_small[1] / mib, copy_small[2],
             round(copy_small[0] / copy_small[2]), "", "", ""],
            ["COPY (SELECT ...) 100k", copy_full[0], copy_full[1] / mib, copy_full[2],
             round(copy_full[0] / copy_full[2]), "", "", ""],
        ]
        + [
            [f"COPY of the same JSON {r.label}{'' if jit else ', jit off'}, best of "
             f"{len(r.copies[jit])}", c[0], c[1] / mib, c[2], round(c[0] / c[2]), "", "", ""]
            for r in same
            for jit in (True, False)
            for c in [min(r.copies[jit], key=lambda c: c[2])]
        ]
        + [
            ["judged_turn_count ~10k", small_total, "", small_count_s, "", "", "", ""],
            ["judged_turn_count 100k", full_total, "", full_count_s, "", "", "", ""],
        ],
    )  # fmt: skip
    print(f"\nexport / COPY time: ~10k {timed_small.seconds / copy_small[2]:.1f}x, "
          f"100k {timed_full.seconds / copy_full[2]:.1f}x")  # fmt: skip
    print(f"\nexport / COPY of the same JSON, in rounds of export, COPY, COPY with jit off "
          f"(load before them {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}):")  # fmt: skip
    for r in same:
        print(f"  {r.label}: export s {' / '.join(f'{e.seconds:.2f}' for e in r.exports)}; "
              f"COPY s {' / '.join(f'{c[2]:.2f}' for c in r.copies[True])}; "
              f"jit off {' / '.join(f'{c[2]:.2f}' for c in r.copies[False])}; "
              f"each round's export / its faster COPY "
              f"{' / '.join(f'{x:.2f}' for x in r.round_ratios)}x; "
              f"best / best {r.ratio:.2f}x")  # fmt: skip
    bytes_export = timed_full.size / timed_full.records
    bytes_json = same[1].best_copy[1] / same[1].best_copy[0]
    print(
        f"bytes per record, 100k: export {bytes_export:,.0f}, COPY of the same JSON "
        f"{bytes_json:,.0f} ({bytes_json / bytes_export - 1:+.1%}); ~10k: export "
        f"{timed_small.size / timed_small.records:,.0f}, "
        f"COPY {same[0].best_copy[1] / same[0].best_copy[0]:,.0f}"
    )
    print(
        f"the same JSON, ~10k: {equal:,} of {compared:,} records equal to the export's as JSON "
        "values (timestamps as instants); differing: "
        + (", ".join(f"{path} {n:,}" for path, n in differing.most_common()) or "none")
    )

    print()
    _setup.print_table(
        ["CPU of the export", "seconds", "user s", "sys s", "PostgreSQL s", "CPU s",
         "cores busy", "CPU ms / 1k records"],
        [
            [r.label, r.seconds, r.user_s, r.sys_s, "?" if r.pg_cpu_s is None else r.pg_cpu_s,
             r.user_s + r.sys_s + (r.pg_cpu_s or 0.0), r.cores_busy,
             1000 * (r.user_s + r.sys_s + (r.pg_cpu_s or 0.0)) / (r.records / 1000)]
            for r in (timed_small, timed_full)
        ],
    )  # fmt: skip
    cores = os.cpu_count() or 1
    budget = cores * TURNS / TARGET_RECORDS_PER_S
    print(f"writing and hashing the 100k export's {timed_full.size / mib:,.0f} MiB alone: "
          f"{floor_s:.2f} s, {floor_cpu:.2f} CPU s. At {TARGET_RECORDS_PER_S:,} records/s the "
          f"100k export may use at most {cores} cores x {TURNS / TARGET_RECORDS_PER_S:.0f} s = "
          f"{budget:.0f} CPU s, PostgreSQL's included")  # fmt: skip

    print()
    _setup.print_table(
        ["dashboard(samples=200)", "judged turns", "median s", "runs s", "SQL s", "Python s"],
        [
            [b.label, b.judged_turns, b.median, " / ".join(f"{x:.2f}" for x in b.runs),
             sum(t for _, t in b.queries), b.median - sum(t for _, t in b.queries)]
            for b in boards
        ],
    )  # fmt: skip
    for board in boards:
        print(f"\n{board.label}: queries (median s, share of the median run)")
        for name, seconds in sorted(board.queries, key=lambda q: -q[1]):
            flag = "  <-- over 2 s" if seconds > FLAG_SECONDS else ""
            print(f"  {name:<36} {seconds:7.3f}  {seconds / board.median:6.1%}{flag}")

    checks = [
        (f"the ~10k export wrote {small_total:,} records and the 100k export {full_total:,}",
         timed_small.records == small_total and timed_full.records == full_total
         and full_total == TURNS),
        ("two exports with the same filters give the same sha256 "
         f"(~10k {timed_small.sha[:12]}, 100k {timed_full.sha[:12]})",
         timed_small.sha == traced_small.sha and timed_full.sha == traced_full.sha),
        (f"native export of 100k >= {TARGET_RECORDS_PER_S:,} records/s "
         f"({timed_full.per_second:,.0f})", timed_full.per_second >= TARGET_RECORDS_PER_S),
        (f"flat memory, peak RSS growth: 100k {timed_full.rss_growth_mib:.1f} MiB <= "
         f"max({FLAT_RATIO} x, +{FLAT_MIB:.0f} MiB) of ~10k {timed_small.rss_growth_mib:.1f} MiB",
         _flat(timed_small.rss_growth_mib, timed_full.rss_growth_mib)),
        (f"flat memory, tracemalloc peak: 100k {traced_full.traced_peak_mib:.1f} MiB <= "
         f"max({FLAT_RATIO} x, +{FLAT_MIB:.0f} MiB) of ~10k {traced_small.traced_peak_mib:.1f} MiB",
         _flat(traced_small.traced_peak_mib, traced_full.traced_peak_mib)),
        (f"COPY of the same JSON writes records of the export's size within "
         f"{SAME_SIZE_WITHIN:.0%} ({bytes_json:,.0f} vs {bytes_export:,.0f} bytes at 100k)",
         abs(bytes_json / bytes_export - 1) <= SAME_SIZE_WITHIN
         and same[0].best_copy[0] == small_total and same[1].best_copy[0] == full_total),
        (f"export at or above COPY of the same JSON: best export / best COPY time <= 1.0 "
         f"(~10k {same[0].ratio:.2f}x, 100k {same[1].ratio:.2f}x)",
         all(r.ratio <= 1.0 for r in same)),
    ]  # fmt: skip
    for board in boards:
        if board.median > FLAG_SECONDS:
            print(f"\nNOTE: {board.label} takes {board.median:.2f} s (over {FLAG_SECONDS:.0f} s)")
    status = _setup.verdict(checks)
    if args.profile or timed_full.per_second < TARGET_RECORDS_PER_S:
        profile_export(small)
    return status


if __name__ == "__main__":
    _setup.finish(main())
