"""Generation overhead: what Marlin adds around a model's own latency, with real workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench_gen \
    REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python -m bench.generation

Serves a small bare repository from a git HTTP server on the loopback, clones it, and points
two `openai` endpoints at a fake OpenAI server (tests/fakes/model_servers.py) that answers
every request after a fixed latency L (`--latency`, 2.0 s) with a fenced diff that applies to
the repository. Real `celery worker` processes (prefork) consume a queue of this run's own
over Redis, against PostgreSQL, exactly as in production. `--embedded` measures instead the
default a new user runs (`scripts/dev.py run` with no services): a SQLite file and kombu's
filesystem broker under a MARLIN_VAR_DIR of its own, one worker with 2 pool processes.

1. Latency: `--runs` (10) times, one task is created with tasks.services.task_create and the
   database is polled every 10 ms until both candidates are SUCCEEDED.
   Target: every run, and the median and p95, <= 1.1 x L + 0.2 s (2.4 s for L = 2).
2. Throughput: `--tasks` (100) tasks (200 candidates) created back to back, through
   `--processes` (2) worker processes of `--concurrency` (8) pool processes each. Reported:
   wall time, candidates/s, and per candidate the overhead beyond L and the queue wait.

Every candidate's time is split with timestamps: task_create, the worker's "received" log
line, the claim (started_at), the fake's receipt of the model call and its answer, the
stored result (finished_at) and the poll that saw it. Exits 1 when target 1 is missed.

`--what-if` measures both again with workers that import the generation code and the model
SDKs before the pool forks (a worker_init hook, the README's first proposal), and compares.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench import _setup

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marlin_bench_gen"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
BASE_DIR = Path(__file__).resolve().parent.parent
KEY_ENV = "MARLIN_MODEL_KEY_BENCH_FAKE_OPENAI"
REPOSITORY = "bench/calc"
PROJECT = "Bench: generation overhead"
USERNAME = "bench-generation"
POLL_SECONDS = 0.010
FILES = {
    "README.md": "# calc\n\nA tiny calculator.\n",
    "calc/__init__.py": "",
    "calc/ops.py": "def add(a, b):\n    return a + b\n\n\ndef div(a, b):\n    return a / b\n",
    "tests/test_ops.py": "from calc.ops import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
}
PROMPT = "Make div in calc/ops.py safe when b is zero."
ANSWER = (
    "Guarded the division.\n\n```diff\n--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -5,2 +5,4 @@\n"
    " def div(a, b):\n+    if b == 0:\n+        return None\n     return a / b\n```\n"
)
TOKEN_RE = re.compile(r"\[(bench-[a-z]+-\d+)\]")
LOG_RE = re.compile(
    r"^\[(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/(?P<proc>[\w-]+)\] "
    r"Task tasks\.jobs\.candidate_generate_run\[(?P<id>[0-9a-f-]+)\] "
    r"(?:(?P<received>received)|succeeded in (?P<secs>[\d.]+)s)"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.generation", description=__doc__)
    parser.add_argument("--latency", type=float, default=2.0, help="the fake model's L (s)")
    parser.add_argument("--runs", type=int, default=10, help="latency runs (one task each)")
    parser.add_argument(
        "--tasks", type=int, help="throughput tasks (2 each; default 100, 10 embedded)"
    )
    parser.add_argument(
        "--processes", type=int, help="celery worker processes (default 2, 1 embedded)"
    )
    parser.add_argument(
        "--concurrency", type=int, help="pool size per process (default 8, 2 embedded)"
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="the default a new user runs (scripts/dev.py run): SQLite, the filesystem broker, "
        "one worker with 2 slots",
    )
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="measure again with the model SDKs imported before the pool forks (the proposal)",
    )
    args = parser.parse_args()
    defaults = (10, 1, 2) if args.embedded else (100, 2, 8)
    for name, default in zip(("tasks", "processes", "concurrency"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def use_embedded_default(var_dir: Path) -> None:
    """The settings of `scripts/dev.py run` with no services configured: a SQLite file and
    kombu's filesystem broker, both under their own MARLIN_VAR_DIR (read by the workers too)."""
    var_dir.mkdir(parents=True)
    os.environ.pop("REDIS_URL", None)
    os.environ.update(
        MARLIN_VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite:///{var_dir / 'marlin.sqlite3'}",
        CELERY_BROKER_URL="filesystem://",
    )


# --- The fake model, timed -----------------------------------------------------------------


def _request_key(body: object) -> tuple[str, str]:
    """(model id, task token) of a chat completion request: which candidate is asking."""
    if not isinstance(body, dict):
        return ("", "")
    text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    match = TOKEN_RE.search(text)
    return (str(body.get("model", "")), match.group(1) if match else "")


def timed_openai_server(latency: float):
    """A FakeOpenAIServer that notes when each model call arrives and when it is answered."""
    from tests.fakes import model_servers

    # Up to --processes x --concurrency jobs connect at once; socketserver's listen backlog
    # of 5 could drop SYNs (a 1 s retransmit), a limit of the fake, not of Marlin.
    model_servers._HTTPServer.request_queue_size = 256

    class TimedOpenAIServer(model_servers.FakeOpenAIServer):
        def __init__(self) -> None:
            super().__init__(default=model_servers.delay(latency, then=model_servers.ok(ANSWER)))
            self.timings: dict[tuple[str, str], tuple[float, float]] = {}
            self._timing_lock = threading.Lock()

        def _reply_for(self, request):
            arrived = time.time()
            reply = super()._reply_for(request)
            with self._timing_lock:
                self.timings[_request_key(request.body)] = (arrived, time.time())
            return reply

    return TimedOpenAIServer()


# --- Fixtures: repository, endpoints, project, user ----------------------------------------


def prepare(git_root: Path, git_base: str, fake_base_url: str):
    from django.contrib.auth import get_user_model

    from repos import git_client
    from repos import services as repo_services
    from repos.models import Repository
    from tasks.models import ModelEndpoint, Project, ProjectEndpoint, Task

    owner, name = REPOSITORY.split("/")
    git_client.create_bare_repository(git_root / owner / f"{name}.git", FILES, message="calc")
    repository, _ = Repository.objects.update_or_create(
        full_name=REPOSITORY,
        defaults={
            "clone_url": f"{git_base}/{REPOSITORY}.git",
            "html_url": f"{git_base}/{REPOSITORY}",
            "default_branch": "main",
            "language": "Python",
            "is_enabled": True,
            "max_open_tasks": None,
            # The cache directory is new on every run: clone again from scratch.
            "clone_status": Repository.CloneStatus.NOT_CLONED,
            "cloned_at": None,
        },
    )
    repo_services.repository_queue_clone(repository=repository)
    repo_services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    if not repository.is_ready:
        raise SystemExit(f"the clone failed: {repository.clone_error}")
    endpoints = []
    for slot in ("a", "b"):
        endpoint, _ = ModelEndpoint.objects.update_or_create(
            name=f"bench-generation-{slot}",
            defaults={
                "provider": ModelEndpoint.Provider.OPENAI,
                "model_id": f"bench-model-{slot}",
                "base_url": fake_base_url,
                "api_key_env": KEY_ENV,
                "parameters": {"timeout": 60},
                "max_concurrency": 200,
                "is_enabled": True,
            },
        )
        endpoint.full_clean()
        endpoints.append(endpoint)
    project, _ = Project.objects.update_or_create(name=PROJECT, defaults={"is_active": True})
    for endpoint in endpoints:
        ProjectEndpoint.objects.get_or_create(project=project, endpoint=endpoint)
    Task.objects.filter(project=project).delete()  # earlier runs' tasks
    user, created = get_user_model().objects.get_or_create(username=USERNAME)
    if created:
        user.set_unusable_password()
        user.save()
    return repository, project, user


# --- Workers -------------------------------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path
    log: object


# The proposal for the cold pool processes, simulated for --what-if: the same `celery` command
# line, plus a worker_init hook that imports the generation code and the model SDKs in the
# worker's main process (Django is set up by then), before the pool forks.
PRELOAD = """
import sys
from celery.signals import worker_init

@worker_init.connect
def _preload(**kwargs):
    from tasks import generation_services, llm_client
    llm_client._registry()

from celery.__main__ import main
sys.argv[0] = "celery"
main()
"""


def start_workers(
    count: int, concurrency: int, queue: str, log_dir: Path, *, preload: bool = False
) -> list[Worker]:
    log_dir.mkdir(parents=True, exist_ok=True)
    launcher = ["-c", PRELOAD] if preload else ["-m", "celery"]
    workers = []
    for number in range(1, count + 1):
        log_path = log_dir / f"worker{number}.log"
        log = log_path.open("w")
        process = subprocess.Popen(
            [sys.executable, *launcher, "-A", "marlin", "worker", "--pool=prefork",
             f"--concurrency={concurrency}", "--loglevel=INFO", "--without-gossip",
             "--without-mingle", "-Q", queue, "-n", f"{queue}-{number}@%h"],
            cwd=BASE_DIR, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the pool can be killed too
        )  # fmt: skip
        workers.append(Worker(process, log_path, log))
    deadline = time.monotonic() + 90
    for worker in workers:
        while "ready." not in worker.log_path.read_text():
            if worker.process.poll() is not None or time.monotonic() > deadline:
                text = worker.log_path.read_text()
                stop_workers(workers)
                raise SystemExit(f"a Celery worker did not start:\n{text}")
            time.sleep(0.1)
    return workers


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.terminate()  # warm shutdown: the pool finishes and exits
    for worker in workers:
        try:
            worker.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait()
        worker.log.close()


@dataclass
class JobLog:
    received: float | None = None
    runtime: float | None = None  # celery's "succeeded in" (the job function, L included)
    child: str = ""
    first_of_child: bool = False


def read_job_logs(workers: list[Worker]) -> dict[str, JobLog]:
    jobs: dict[str, JobLog] = defaultdict(JobLog)
    seen_children: set[str] = set()
    for number, worker in enumerate(workers, start=1):
        for line in worker.log_path.read_text().splitlines():
            match = LOG_RE.match(line)
            if not match:
                continue
            at = datetime.strptime(match["ts"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            job = jobs[match["id"]]
            if match["received"]:
                job.received = at
            else:
                job.runtime = float(match["secs"])
                job.child = f"w{number}/{match['proc']}"
                job.first_of_child = job.child not in seen_children
                seen_children.add(job.child)
    return jobs


# --- Measuring -----------------------------------------------------------------------------


@dataclass
class Sample:
    """One candidate's timeline, in epoch seconds (all clocks are this machine's)."""

    token: str
    model: str
    job_id: str
    t0: float  # just before task_create
    committed: float  # task_create returned (the jobs were sent on commit)
    created: float
    started: float
    finished: float
    seen: float  # the poll that found both candidates (or all of them) done
    applies: bool
    last_finished: float = float("nan")  # the last finished_at the poll was waiting for
    arrived: float = float("nan")  # the fake received the model call
    replied: float = float("nan")  # the fake sent its answer
    received: float = float("nan")  # the worker's main process logged "received"
    runtime: float = float("nan")
    child: str = ""
    first_of_child: bool = False


@dataclass
class Session:
    """Both measures against one set of worker processes."""

    label: str
    latency: float
    lat: list[Sample]
    thr: list[Sample]
    begin: float
    created: float
    done: float

    def runs(self) -> list[list[Sample]]:
        by_run: dict[str, list[Sample]] = defaultdict(list)
        for sample in self.lat:
            by_run[sample.token].append(sample)
        return [by_run[t] for t in sorted(by_run, key=lambda t: int(t.rsplit("-", 1)[1]))]

    def walls(self) -> list[float]:
        return [pair[0].seen - pair[0].t0 for pair in self.runs()]

    @property
    def wall(self) -> float:
        return self.done - self.begin


def create_task(repository, project, user, token: str):
    from tasks.models import Task
    from tasks.services import task_create

    return task_create(
        contractor=user, project=project, repository=repository, ref="",
        title=f"Guard division [{token}]", kind=Task.Kind.BUG_FIX, prompt=PROMPT,
    )  # fmt: skip


def _rows(task_ids: list[int]) -> list[dict]:
    from tasks.models import Candidate

    return list(
        Candidate.objects.filter(turn__task_id__in=task_ids).values(
            "turn__task_id", "turn__task__title", "endpoint__model_id", "status", "job_id",
            "created_at", "started_at", "finished_at", "applies_cleanly", "error",
        )
    )  # fmt: skip


def _wait_done(task_ids: list[int], expected: int, timeout: float, interval: float) -> float:
    """Poll until every candidate of the tasks succeeded; returns when that was seen."""
    from tasks.models import Candidate

    deadline = time.monotonic() + timeout
    while True:
        statuses = list(
            Candidate.objects.filter(turn__task_id__in=task_ids).values_list("status", flat=True)
        )
        if len(statuses) == expected and all(s == Candidate.Status.SUCCEEDED for s in statuses):
            return time.time()
        if Candidate.Status.FAILED in statuses:
            failed = [r for r in _rows(task_ids) if r["status"] == Candidate.Status.FAILED]
            raise SystemExit(f"a candidate failed: {failed[0]['error']}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s: {statuses.count('SUCCEEDED')} "
                             f"of {expected} candidates succeeded")  # fmt: skip
        time.sleep(interval)


def _samples(rows: list[dict], starts: dict[str, tuple[float, float]], seen) -> list[Sample]:
    samples = []
    for row in rows:
        token = TOKEN_RE.search(row["turn__task__title"]).group(1)
        t0, committed = starts[token]
        samples.append(
            Sample(
                token=token, model=row["endpoint__model_id"], job_id=row["job_id"], t0=t0,
                committed=committed, created=row["created_at"].timestamp(),
                started=row["started_at"].timestamp(), finished=row["finished_at"].timestamp(),
                seen=seen(token), applies=bool(row["applies_cleanly"]),
            )
        )  # fmt: skip
    return samples


def measure_latency(fixtures, runs: int, latency: float) -> list[Sample]:
    starts: dict[str, tuple[float, float]] = {}
    seen: dict[str, float] = {}
    task_ids = []
    for run in range(1, runs + 1):
        token = f"bench-lat-{run}"
        t0 = time.time()
        task = create_task(*fixtures, token)
        starts[token] = (t0, time.time())
        seen[token] = _wait_done(
            [task.pk], 2, timeout=max(30.0, 5 * latency), interval=POLL_SECONDS
        )
        task_ids.append(task.pk)
        print(f"  run {run:2}: {seen[token] - t0:.3f} s", flush=True)
        time.sleep(0.3)  # let the finished jobs settle their turn and ack first
    samples = _samples(_rows(task_ids), starts, seen.__getitem__)
    last: dict[str, float] = defaultdict(float)
    for sample in samples:
        last[sample.token] = max(last[sample.token], sample.finished)
    for sample in samples:
        sample.last_finished = last[sample.token]
    return samples


def measure_throughput(fixtures, tasks: int, latency: float, slots: int):
    starts: dict[str, tuple[float, float]] = {}
    task_ids = []
    begin = time.time()
    for number in range(1, tasks + 1):
        token = f"bench-thr-{number}"
        t0 = time.time()
        task_ids.append(create_task(*fixtures, token).pk)
        starts[token] = (t0, time.time())
    created = time.time()
    ideal = -(-2 * tasks // slots) * latency
    done = _wait_done(task_ids, 2 * tasks, timeout=3 * ideal + 60, interval=0.05)
    samples = _samples(_rows(task_ids), starts, lambda token: done)
    last = max(s.finished for s in samples)
    for sample in samples:
        sample.last_finished = last
    return samples, begin, created, done


def attach(samples: list[Sample], fake, jobs: dict[str, JobLog]) -> None:
    for sample in samples:
        sample.arrived, sample.replied = fake.timings.get(
            (sample.model, sample.token), (float("nan"), float("nan"))
        )
        job = jobs.get(sample.job_id)
        if job is not None:
            sample.received = job.received if job.received is not None else float("nan")
            sample.runtime = job.runtime if job.runtime is not None else float("nan")
            sample.child = job.child
            sample.first_of_child = job.first_of_child


def run_session(args, label: str, *, preload: bool, fixtures, fake, queue: str, log_dir: Path):
    slots = args.processes * args.concurrency
    start = time.monotonic()
    workers = start_workers(args.processes, args.concurrency, queue, log_dir, preload=preload)
    try:
        print(f"\n=== {label}: {args.processes} x celery prefork --concurrency="
              f"{args.concurrency} ({slots} slots), ready in {time.monotonic() - start:.1f} s")  # fmt: skip
        print(f"1. latency: {args.runs} tasks one after the other (2 candidates each)")
        lat = measure_latency(fixtures, args.runs, args.latency)
        print(f"2. throughput: {args.tasks} tasks ({2 * args.tasks} candidates) back to back")
        thr, begin, created, done = measure_throughput(fixtures, args.tasks, args.latency, slots)
        print(f"  created in {created - begin:.2f} s, all done after {done - begin:.2f} s")
    finally:
        stop_workers(workers)  # also flushes the logs read below
    jobs = read_job_logs(workers)
    attach(lat, fake, jobs)
    attach(thr, fake, jobs)
    return Session(label, args.latency, lat, thr, begin, created, done)


# --- Where the time goes -------------------------------------------------------------------

NAN = float("nan")
STAGES = [
    ("task_create → commit (jobs sent)", lambda s: s.committed - s.t0),
    ("commit → worker received", lambda s: s.received - s.committed),
    ("received → claimed (started_at)", lambda s: s.started - s.received),
    ("claimed → model call arrives", lambda s: s.arrived - s.started),
    ("model (the fake's L)", lambda s: s.replied - s.arrived),
    ("answer → stored (finished_at)", lambda s: s.finished - s.replied),
    ("both stored → seen by the poll", lambda s: s.seen - s.last_finished),
]


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if v == v]  # drops NaN (a missing log line or timing)


def stage_rows(samples: list[Sample], stages=STAGES) -> list[list[object]]:
    rows = []
    for label, value in stages:
        values = _finite([value(s) * 1000 for s in samples])
        if values:
            rows.append([label, len(values), _setup.percentile(values, 50),
                         _setup.percentile(values, 95), max(values)])  # fmt: skip
    return rows


def in_process_stages(candidate_id: int, fake) -> list[list[object]]:
    """The job's own steps, timed here in one warm process (median of 5 after one warm-up)."""
    import logging

    from django.conf import settings

    from repos import git_client
    from repos import services as repo_services
    from tasks import answers, generation_services, llm_client, prompting
    from tasks.models import Candidate
    from tasks.providers import openai_api
    from tests.fakes import model_servers

    for name in ("httpx", "httpx2"):  # the clients log every request at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    candidate = Candidate.objects.select_related(
        "endpoint", "turn__task__repository", "turn__task__project"
    ).get(pk=candidate_id)
    task = candidate.turn.task
    endpoint = candidate.endpoint
    config = llm_client.EndpointConfig(
        provider=endpoint.provider, name=endpoint.name, model_id=endpoint.model_id,
        parameters=endpoint.parameters, base_url=endpoint.base_url,
        api_key_env=endpoint.api_key_env,
    )  # fmt: skip
    request = prompting.build_request(candidate)
    dest = repo_services.repository_cache_path(task.repository)
    bases = settings.MARLIN_GIT_ALLOWED_BASES

    def read_original(path: str) -> str | None:
        return repo_services.repository_read_text(
            repository=task.repository, sha=task.commit_sha, path=path, max_bytes=1 << 20
        )

    def model_call() -> None:
        fake.enqueue(model_servers.ok(ANSWER))  # answered at once, ahead of the default
        openai_api.generate(config, request)

    diff = answers.parse(ANSWER, read_original=read_original).diff
    steps = [
        ("load the candidate (select_related)", lambda: Candidate.objects.select_related(
            "endpoint", "turn__task__repository", "turn__task__project").get(pk=candidate_id)),
        ("prompting.build_request (git reads)", lambda: prompting.build_request(candidate)),
        ("  of which repository_context", lambda: repo_services.repository_context(
            repository=task.repository, sha=task.commit_sha, wanted=["calc/ops.py"],
            budget_bytes=100_000)),
        ("openai.OpenAI(...) construction", lambda: openai_api.openai.OpenAI(
            api_key="k", base_url=config.base_url, max_retries=0, timeout=60.0)),
        ("model call with L = 0 (client + HTTP)", model_call),
        ("answers.parse", lambda: answers.parse(ANSWER, read_original=read_original)),
        ("git_client.check_patch", lambda: git_client.check_patch(
            dest, task.commit_sha, diff, allowed_bases=bases)),
        ("generation_services._read_answer (parse + check)", lambda: generation_services._read_answer(
            candidate, llm_client.ProviderAnswer(text=ANSWER))),
    ]  # fmt: skip
    rows = []
    for label, step in steps:
        step()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            step()
            times.append((time.perf_counter() - start) * 1000)
        rows.append([label, statistics.median(times), max(times)])
    return rows


def cold_import_ms() -> float:
    """What a fresh pool process pays on its first job: importing the model SDKs."""
    code = (
        "import time, django; django.setup(); import tasks.jobs, tasks.generation_services; "
        "t = time.perf_counter(); from tasks import llm_client; llm_client._registry(); "
        "print((time.perf_counter() - t) * 1000)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=dict(os.environ),
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


# --- Report --------------------------------------------------------------------------------


def _pct(values: list[float], pct: float) -> float:
    return _setup.percentile(_finite(values), pct)


def _beyond(session: Session) -> list[float]:
    return [(s.finished - s.created - session.latency) * 1000 for s in session.thr]


def _waits(session: Session) -> list[float]:
    return [(s.started - s.created) * 1000 for s in session.thr]


def _first_jobs(session: Session) -> tuple[list[float], list[float]]:
    """Celery's runtime beyond L (ms) of each pool process's first job, and of later jobs."""
    jobs = [s for s in session.lat + session.thr if s.runtime == s.runtime]
    first = [(s.runtime - session.latency) * 1000 for s in jobs if s.first_of_child]
    later = [(s.runtime - session.latency) * 1000 for s in jobs if not s.first_of_child]
    return first, later


def report_session(session: Session, args, target: float) -> None:
    latency = session.latency
    slots = args.processes * args.concurrency
    rows = []
    for number, pair in enumerate(session.runs(), start=1):
        wall = pair[0].seen - pair[0].t0
        rows.append([
            number, wall, wall - latency,
            max(s.started - s.created for s in pair) * 1000,
            max(s.arrived - s.started for s in pair) * 1000,
            max(s.finished - s.replied for s in pair) * 1000,
            (pair[0].seen - max(s.finished for s in pair)) * 1000,
            " ".join(f"{s.child}{'*' if s.first_of_child else ''}" for s in pair),
            "PASS" if wall <= target else "FAIL",
        ])  # fmt: skip
    print(f"\n[{session.label}] 1. Latency: task_create → both candidates SUCCEEDED "
          f"(L = {latency:.2f} s, target <= {target:.2f} s)")  # fmt: skip
    print("Stages in ms, the slower candidate of the two; * = the pool process's first job.")
    _setup.print_table(
        ["run", "wall s", "beyond L s", "queue wait", "claim → model", "answer → stored",
         "→ seen", "pool processes", "result"],
        rows,
    )  # fmt: skip
    walls = session.walls()
    median, p95 = statistics.median(walls), _setup.percentile(walls, 95)
    print(f"median {median:.3f} s, p95 {p95:.3f} s, max {max(walls):.3f} s; beyond L: median "
          f"{median - latency:.3f} s, p95 {p95 - latency:.3f} s, max {max(walls) - latency:.3f} s")  # fmt: skip
    print(f"\n[{session.label}] Where the time goes, latency runs (per candidate, ms):")
    _setup.print_table(["stage", "n", "p50", "p95", "max"], stage_rows(session.lat))

    thr = session.thr
    beyond, waits = _beyond(session), _waits(session)
    in_job = [(s.finished - s.started - latency) * 1000 for s in thr]
    print(f"\n[{session.label}] 2. Throughput: {len(thr)} candidates, {args.processes} worker "
          f"processes x concurrency {args.concurrency} = {slots} slots")  # fmt: skip
    _setup.print_table(
        ["measure", "value"],
        [
            [f"{args.tasks} x task_create, s", session.created - session.begin],
            ["wall: first task_create → all seen done, s", session.wall],
            ["wall: first task_create → last finished_at, s",
             max(s.finished for s in thr) - session.begin],
            [f"ideal with {slots} slots: ceil(n / slots) x L, s", -(-len(thr) // slots) * latency],
            ["candidates / s", len(thr) / session.wall],
            ["ideal candidates / s: slots / L", slots / latency],
        ],
    )  # fmt: skip
    print()
    _setup.print_table(
        ["per candidate, ms", "p50", "p95", "max"],
        [
            ["finished_at - created_at - L", _pct(beyond, 50), _pct(beyond, 95), max(beyond)],
            ["queue wait: started_at - created_at", _pct(waits, 50), _pct(waits, 95),
             max(waits)],
            ["in the job: finished_at - started_at - L", _pct(in_job, 50), _pct(in_job, 95),
             max(in_job)],
        ],
    )  # fmt: skip
    print(f"\n[{session.label}] Where the time goes, throughput (per candidate, ms):")
    _setup.print_table(["stage", "n", "p50", "p95", "max"], stage_rows(thr, STAGES[1:-1]))
    first, later = _first_jobs(session)
    print(f"\n[{session.label}] The job's runtime beyond L (celery's 'succeeded in'), ms:")
    _setup.print_table(
        ["jobs", "n", "p50", "p95", "max"],
        [[label, len(v), _pct(v, 50), _pct(v, 95), max(v)]
         for label, v in (("first job of a pool process", first), ("later jobs", later)) if v],
    )  # fmt: skip


def report_what_if(sessions: list[Session]) -> None:
    print("\nWhat if: the model SDKs are imported before the pool forks (worker_init hook)")

    def row(label: str, value) -> list[object]:
        return [label, *(value(s) for s in sessions)]

    def first_p50(s: Session) -> object:
        first = _first_jobs(s)[0]
        return _pct(first, 50) if first else "-"

    _setup.print_table(
        ["measure", *(s.label for s in sessions)],
        [
            row("latency run 1, s", lambda s: s.walls()[0]),
            row("latency median, s", lambda s: statistics.median(s.walls())),
            row("latency p95, s", lambda s: _setup.percentile(s.walls(), 95)),
            row("latency max, s", lambda s: max(s.walls())),
            row("throughput wall, s", lambda s: s.wall),
            row("throughput candidates / s", lambda s: len(s.thr) / s.wall),
            row("beyond L p50, ms", lambda s: _pct(_beyond(s), 50)),
            row("beyond L p95, ms", lambda s: _pct(_beyond(s), 95)),
            row("queue wait p50, ms", lambda s: _pct(_waits(s), 50)),
            row("queue wait p95, ms", lambda s: _pct(_waits(s), 95)),
            row("first job of a pool process, beyond L p50, ms", first_p50),
        ],
    )


def main() -> int:
    args = parse_args()
    target = 1.1 * args.latency + 0.2
    started = time.monotonic()
    queue = f"bench-gen-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="marlin-bench-gen-"))
    if args.embedded:
        use_embedded_default(tmp / "var")
    else:
        os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
        os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    from marlin.devtools.git_http_server import GitHttpServer  # stdlib only: no Django needed

    (tmp / "git").mkdir()
    git_server = GitHttpServer(tmp / "git")
    git_server.start()
    fake = timed_openai_server(args.latency).start()
    # Read by the settings of this process and inherited by the workers.
    os.environ.update(
        CELERY_TASK_DEFAULT_QUEUE=queue,
        MARLIN_GIT_ALLOWED_BASES=f"https://github.com,{git_server.base_url}",
        MARLIN_REPO_CACHE_DIR=str(tmp / "repos"),
        **{KEY_ENV: "sk-bench-not-a-real-key"},
    )
    sessions: list[Session] = []
    try:
        _setup.setup(database_url=DEFAULT_DATABASE_URL)
        from django.conf import settings

        wanted = "filesystem" if args.embedded else "redis"
        if not settings.CELERY_BROKER_URL.startswith(wanted):
            print(f"This run needs the {wanted} broker, not {settings.CELERY_BROKER_URL}.")
            return 2
        print(f"machine:   {_setup.machine()}")
        print(f"database:  {_setup.describe_database()}")
        print(f"broker:    {settings.CELERY_BROKER_URL}, queue {queue}")
        fixtures = prepare(tmp / "git", git_server.base_url, fake.base_url)
        print(f"repo:      {fixtures[0].full_name} cloned from {fixtures[0].clone_url}")
        print(f"model:     fake OpenAI at {fake.base_url}, L = {args.latency:.2f} s")
        common = {"fixtures": fixtures, "fake": fake, "queue": queue}
        sessions.append(run_session(args, "as is", preload=False, log_dir=tmp / "as-is", **common))
        if args.what_if:
            sessions.append(
                run_session(args, "preloaded", preload=True, log_dir=tmp / "preload", **common)
            )
        stages = in_process_stages(_last_candidate_id(fixtures[1]), fake)
        cold_ms = cold_import_ms()
    finally:
        if not args.embedded:  # the filesystem broker's folders go with tmp
            _delete_queue(queue)
        fake.stop()
        git_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    for session in sessions:
        report_session(session, args, target)
    print("\nIn this process (warm), the job's steps (ms; median and max of 5):")
    _setup.print_table(["step", "median", "max"], stages)
    print(f"importing the model SDKs in a fresh process (tasks.providers): {cold_ms:.0f} ms")
    if len(sessions) > 1:
        report_what_if(sessions)
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")

    session = sessions[0]
    walls = session.walls()
    median, p95 = statistics.median(walls), _setup.percentile(walls, 95)
    samples = [s for each in sessions for s in each.lat + each.thr]
    applied = sum(s.applies for s in samples)
    return _setup.verdict(
        [
            (f"latency: every run <= {target:.2f} s (max {max(walls):.3f} s)",
             max(walls) <= target),
            (f"latency: median <= {target:.2f} s ({median:.3f} s)", median <= target),
            (f"latency: p95 <= {target:.2f} s ({p95:.3f} s)", p95 <= target),
            (f"every candidate's diff applied cleanly ({applied} of {len(samples)})",
             applied == len(samples)),
        ]
    )  # fmt: skip


def _last_candidate_id(project) -> int:
    from tasks.models import Candidate

    return Candidate.objects.filter(turn__task__project=project).latest("pk").pk


def _delete_queue(queue: str) -> None:
    """Remove this run's queue and kombu's binding tables for it from Redis.

    kombu's queue_delete only unbinds what the calling channel declared itself, which the
    workers did, not this process; so the keys are deleted by name.
    """
    try:
        import redis
        from django.conf import settings

        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        keys = [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
        keys += list(client.scan_iter(match=f"{queue}*"))  # the list and its priority lists
        client.delete(*keys)
        client.close()
    except Exception as exc:  # cleanup must not hide the figures
        print(f"(could not delete queue {queue}: {exc})")


if __name__ == "__main__":
    _setup.finish(main())
