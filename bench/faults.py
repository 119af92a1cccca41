"""Fault recovery: kill the worker group, stop Redis, restart PostgreSQL; count what is lost.

    .venv/bin/python -m bench.faults [--only worker-kill|redis-outage|postgres-restart]

Runs as root (PostgreSQL's tools then run as `postgres` through runuser) or as a user who may
run initdb. Nothing shared is touched: the benchmark starts its own PostgreSQL cluster
(initdb in a temp dir, a private port), its own redis-server (private port, `--save ''
--appendonly no`, so a restart loses the queue: the worst case), and the whole product on
them: gunicorn serving marlin.wsgi (2 workers), a `celery worker` (its own process group,
`--concurrency` 4 as in docker-compose) and `celery beat` with the product's schedule. The
model is the fake OpenAI server of tests/fakes/model_servers.py answering after `--latency`
(8 s), so candidates are RUNNING when the fault hits; the repository is served by a git HTTP
server on the loopback. A contractor signs in through /login/ (pages) and holds an API token
(tasks are created with POST /api/tasks/).

Each scenario starts from a clean state (no tasks, Redis flushed, fresh web, worker and beat),
creates `--tasks` (4) tasks through the API, waits until >= 2 candidates are RUNNING, then:

1. worker-kill: SIGKILL to the worker's process group; a new worker is started at once (an
   orchestrator's restart policy). Recovery: from the kill until every candidate SUCCEEDED.
2. redis-outage: redis-server is stopped for `--outage` (30) s, then started again, empty.
   Recovery: from the restart until every task created before or during the outage (rows
   made despite an error answer included) has all candidates SUCCEEDED and the readiness
   page (/readyz, or /health/ on a tree without it) answers 200.
3. postgres-restart: `pg_ctl restart -m fast` of the private cluster. Recovery: from
   PostgreSQL accepting connections again until every candidate SUCCEEDED and the workspace
   and /repos/ answer 200.

From the fault until recovery a loop GETs the workspace page of the first task and /repos/
every second; during the Redis outage, and from the PostgreSQL restart until 10 s after it is
back, it also POSTs a task every 5 s. Every non-2xx/3xx answer (or no answer) is counted:
"during" the fault up to the new worker being ready, Redis being back, PostgreSQL back + 10 s;
"after" from then until recovery.

Lost: a task answered with 2xx that has no row; a candidate not SUCCEEDED `--deadline` (300)
seconds after recovery began. Duplicated: more than one Turn per task, more than one Candidate
per turn and slot (or more than two per turn), more model calls received by the fake for a
candidate than the candidate's attempts, a task event (task, from, to, kind) written twice.
Target per scenario: recovery <= 120 s, 0 lost, 0 duplicated; exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench import _setup
from bench.generation import (
    BASE_DIR,
    KEY_ENV,
    PROMPT,
    TOKEN_RE,
    Worker,
    prepare,
    start_workers,
    stop_workers,
    timed_openai_server,
)

SCENARIOS = ("worker-kill", "redis-outage", "postgres-restart")
TARGET_SECONDS = 120.0
DATABASE = "marlin_faults"
QUEUE = "marlin-faults"
HTTP_TIMEOUT = 10.0
POLL_SECONDS = 0.5
# A candidate left FAILED this long is taken as final (beat's sweeps run every 60 s).
FAILED_SETTLE_SECONDS = 75.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--only", choices=SCENARIOS, help="run this scenario alone")
    parser.add_argument("--latency", type=float, default=8.0, help="the fake model's answer time")
    parser.add_argument("--tasks", type=int, default=4, help="tasks created before each fault")
    parser.add_argument("--concurrency", type=int, default=4, help="the worker's pool size")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds Redis stays down")
    parser.add_argument("--deadline", type=float, default=300.0,
                        help="seconds after recovery began before a candidate counts as lost")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) at the end")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def since(start: float) -> str:
    return f"{time.time() - start:6.1f} s"


# --- The private services ------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster of the benchmark's own, in a temp dir owned by `postgres`."""

    def __init__(self, port: int) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                          key=lambda p: int(p.parent.parent.name))  # fmt: skip
        if not versions:
            raise SystemExit("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/pg_ctl)")
        self.bin = versions[-1].parent
        self.port = port
        # initdb refuses to run as root: as root, the tools run as the postgres user.
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.root = Path(tempfile.mkdtemp(prefix="marlin-bench-faults-pg-"))
        if self.as_owner:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([*self.as_owner, str(self.bin / args[0]), *args[1:]], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)  # fmt: skip

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            # fsync off: migrating is faster; a fast shutdown still writes everything.
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.root}'\n"
                       "fsync = off\nfull_page_writes = off\n")  # fmt: skip

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every session is ended; returns once it accepts again."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-m", "fast",
                  "restart")  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop",
                          timeout=30)  # fmt: skip

    def is_ready(self) -> bool:
        import psycopg2

        try:
            psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname=DATABASE, connect_timeout=1).close()  # fmt: skip
        except psycopg2.Error:
            return False
        return True


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done, then raise KeyboardInterrupt."""
    caught: list[int] = []
    interrupts = (signal.SIGINT, signal.SIGTERM)
    previous = {
        s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in interrupts
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if caught:
        raise KeyboardInterrupt(f"signal {caught[0]}")


def _terminate(process: subprocess.Popen | None, timeout: float = 20) -> None:
    """SIGTERM to the process group (a warm shutdown), SIGKILL if it outlives `timeout`."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Stack:
    """The product's processes: gunicorn (2 workers), one celery worker, celery beat."""

    def __init__(self, tmp: Path, concurrency: int) -> None:
        self.tmp = tmp
        self.concurrency = concurrency
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.web: subprocess.Popen | None = None
        self.beat: subprocess.Popen | None = None
        self.workers: list[Worker] = []
        self.logs: list[Any] = []
        self.log_dir = tmp

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("w")
        self.logs.append(log)
        return subprocess.Popen([sys.executable, "-m", *args], cwd=BASE_DIR, env=dict(os.environ),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def start(self, label: str) -> None:
        self.log_dir = self.tmp / "logs" / label
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.web = self._spawn("gunicorn", [
            "gunicorn", "marlin.wsgi:application", "--workers", "2", "--timeout", "30",
            "--bind", f"127.0.0.1:{self.port}", "--access-logfile", "-"])  # fmt: skip
        # A new schedule file: beat's first sweeps come one interval after it starts.
        schedule = self.tmp / "var" / "celerybeat-schedule"
        for stale in schedule.parent.glob("celerybeat-schedule*"):
            stale.unlink()
        self.beat = self._spawn("beat", ["celery", "-A", "marlin", "beat", "--loglevel=INFO",
                                         "--schedule", str(schedule)])  # fmt: skip
        self.add_worker()
        deadline = time.monotonic() + 60
        while not self.page_ok("/health/"):
            if self.web.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{self.tail('gunicorn')}")
            time.sleep(0.2)

    def add_worker(self) -> Worker:
        number = len(self.workers) + 1
        # Ctrl-C waits until the worker is in self.workers, or stop() could not reach it.
        with deferred_interrupts():
            (worker,) = start_workers(1, self.concurrency, QUEUE, self.log_dir / f"worker-{number}")
            self.workers.append(worker)
        return worker

    def kill_worker_group(self) -> None:
        process = self.workers[-1].process
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def page_ok(self, path: str, session: requests.Session | None = None) -> bool:
        try:
            answer = (session or requests).get(self.base + path, timeout=HTTP_TIMEOUT,
                                               allow_redirects=False)  # fmt: skip
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def readiness_path(self) -> str:
        """/readyz/ (or /readyz) once the product has one; /health/ until then."""
        for path in ("/readyz/", "/readyz"):
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base + path, timeout=HTTP_TIMEOUT).status_code != 404:
                    return path
        return "/health/"

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        stop_workers(self.workers)
        self.workers = []
        _terminate(self.beat)
        _terminate(self.web)
        self.beat = self.web = None
        for log in self.logs:
            log.close()
        self.logs = []


# --- The contractor's clients --------------------------------------------------------------


@dataclass
class Answer:
    at: float
    what: str  # "page", "catalogue", "create"
    status: int | None
    error: str = ""
    token: str = ""
    task_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 400

    @property
    def label(self) -> str:
        return str(self.status) if self.status is not None else self.error


class Contractor:
    """Signs in once (a session for pages) and holds an API token (for task creation)."""

    def __init__(self, base: str, username: str, password: str, token: str, fixtures) -> None:
        self.base = base
        self.username, self.password, self.token = username, password, token
        self.repository, self.project = fixtures[0], fixtures[1]
        self.cookies: dict[str, str] = {}
        self.numbers = iter(range(1, 1_000_000))
        self.creates: list[Answer] = []

    def sign_in(self) -> None:
        session = requests.Session()
        session.get(f"{self.base}/login/", timeout=HTTP_TIMEOUT)
        answer = session.post(
            f"{self.base}/login/", allow_redirects=False, timeout=HTTP_TIMEOUT,
            data={"username": self.username, "password": self.password,
                  "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
        )  # fmt: skip
        if answer.status_code != 302 or "sessionid" not in session.cookies:
            raise RuntimeError(f"sign-in failed: {answer.status_code} {answer.text[:300]}")
        self.cookies = dict(session.cookies)

    def pages(self) -> requests.Session:
        """A session of its own for each thread (requests.Session is not thread-safe)."""
        session = requests.Session()
        session.cookies.update(self.cookies)
        return session

    def create_task(self, session: requests.Session | None = None) -> Answer:
        token = f"bench-faults-{next(self.numbers)}"
        started = time.time()
        try:
            reply = (session or requests).post(
                f"{self.base}/api/tasks/", timeout=HTTP_TIMEOUT,
                headers={"Authorization": f"Token {self.token}"},
                json={"project": self.project.pk, "repository": self.repository.pk, "ref": "",
                      "title": f"Guard division [{token}]", "kind": "bug_fix", "prompt": PROMPT},
            )  # fmt: skip
        except requests.RequestException as exc:
            answer = Answer(started, "create", None, type(exc).__name__, token)
        else:
            task_id = None
            if reply.status_code == 201:
                task_id = reply.json().get("id")
            answer = Answer(started, "create", reply.status_code, "", token, task_id)
        self.creates.append(answer)
        return answer


class RequestLoop(threading.Thread):
    """GET the workspace and /repos/ every second; POST a task every 5 s while `posting`."""

    def __init__(self, contractor: Contractor, workspace: str, *, posting: bool) -> None:
        super().__init__(daemon=True)
        self.contractor = contractor
        self.workspace = workspace
        self.posting = posting
        self.answers: list[Answer] = []
        self._halt = threading.Event()

    def _get(self, session: requests.Session, what: str, path: str) -> None:
        started = time.time()
        try:
            status = session.get(self.contractor.base + path, timeout=HTTP_TIMEOUT,
                                 allow_redirects=False).status_code  # fmt: skip
        except requests.RequestException as exc:
            self.answers.append(Answer(started, what, None, type(exc).__name__))
        else:
            self.answers.append(Answer(started, what, status))

    def run(self) -> None:
        pages, api = self.contractor.pages(), requests.Session()
        next_get = next_post = time.monotonic()
        while not self._halt.is_set():
            now = time.monotonic()
            if now >= next_get:
                self._get(pages, "page", self.workspace)
                self._get(pages, "catalogue", "/repos/")
                next_get += 1.0
            if self.posting and now >= next_post:
                self.answers.append(self.contractor.create_task(api))
                next_post += 5.0
            wake = min(next_get, next_post) if self.posting else next_get
            self._halt.wait(max(0.0, wake - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2 * HTTP_TIMEOUT)


# --- Reading the database while it may be down ---------------------------------------------


def db(read: Callable[[], Any], default: Any = None) -> Any:
    """`read()`, or `default` when the database cannot answer (it is being restarted)."""
    from django.db import Error, connection

    try:
        return read()
    except Error:
        with contextlib.suppress(Error):
            connection.close()  # the next call connects afresh
        return default


def fresh_connection() -> None:
    """Drop this process's connection: after a restart of PostgreSQL it is dead."""
    from django.db import Error, connection

    with contextlib.suppress(Error):
        connection.close()


def candidate_rows(project) -> list[dict]:
    from tasks.models import Candidate

    return list(
        Candidate.objects.filter(turn__task__project=project).values(
            "id", "status", "attempts", "error", "turn_id", "slot", "turn__task_id",
            "turn__task__title", "endpoint__model_id",
        )
    )  # fmt: skip


def wait_running(project, at_least: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = db(lambda: candidate_rows(project), [])
        if sum(r["status"] == "RUNNING" for r in rows) >= at_least:
            return
        time.sleep(0.1)
    raise RuntimeError(f"fewer than {at_least} candidates RUNNING after {timeout:.0f} s")


def wait_recovered(project, start: float, deadline: float, pages_ok: Callable[[], bool]):
    """When every candidate SUCCEEDED and `pages_ok()`: epoch seconds, or None by the deadline.

    Returns early (None) when every candidate is final and some stayed FAILED for a while:
    nothing will move them any more without a person.
    """
    failed_since = None
    while time.time() < start + deadline:
        rows = db(lambda: candidate_rows(project))
        if rows:
            statuses = {r["status"] for r in rows}
            if statuses == {"SUCCEEDED"} and pages_ok():
                return time.time()
            if statuses <= {"SUCCEEDED", "FAILED"} and "FAILED" in statuses:
                failed_since = failed_since or time.time()
                if time.time() - failed_since > FAILED_SETTLE_SECONDS:
                    return None
            else:
                failed_since = None
        time.sleep(POLL_SECONDS)
    return None


# --- Counting ------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    recovery: float | None = None
    lost_tasks: int = 0
    lost_candidates: int = 0
    duplicates: Counter = field(default_factory=Counter)
    errors_during: Counter = field(default_factory=Counter)
    errors_after: Counter = field(default_factory=Counter)
    answers: int = 0
    ghosts: int = 0  # rows made for a create that was answered with an error
    notes: list[str] = field(default_factory=list)
    failure: str = ""

    @property
    def lost(self) -> int:
        return self.lost_tasks + self.lost_candidates

    @property
    def duplicated(self) -> int:
        return sum(self.duplicates.values())

    @property
    def met(self) -> bool:
        return (not self.failure and self.recovery is not None
                and self.recovery <= TARGET_SECONDS and self.lost == 0 and self.duplicated == 0)  # fmt: skip


def model_calls(fake) -> Counter:
    """Model calls the fake received, per (model id, task token): one per candidate attempt."""
    calls: Counter = Counter()
    for request in fake.requests:
        body = request.body if isinstance(request.body, dict) else {}
        text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        match = TOKEN_RE.search(text)
        calls[(str(body.get("model", "")), match.group(1) if match else "")] += 1
    return calls


def audit(outcome: Outcome, project, contractor: Contractor, fake) -> None:
    from django.db.models import Count

    from tasks.models import Task, TaskEvent, Turn

    fresh_connection()
    tasks = {
        t["id"]: t["title"] for t in Task.objects.filter(project=project).values("id", "title")
    }
    titles = " ".join(tasks.values())
    for create in contractor.creates:
        exists = f"[{create.token}]" in titles
        if create.ok and not (exists and create.task_id in tasks):
            outcome.lost_tasks += 1
            outcome.notes.append(f"task {create.token} answered {create.status} but has no row")
        if not create.ok and exists:
            outcome.ghosts += 1
    rows = candidate_rows(project)
    outcome.lost_candidates = 2 * len(tasks) - len(rows)  # rows a task should have and lacks
    for row in rows:
        if row["status"] != "SUCCEEDED":
            outcome.lost_candidates += 1
            outcome.notes.append(
                f"candidate {row['id']} ({row['turn__task__title']} {row['slot']}) "
                f"{row['status']}, attempts {row['attempts']}"
                + (f": {row['error'][:120]}" if row["error"] else "")
            )
    turns = Turn.objects.filter(task__project=project)
    outcome.duplicates["turn (task, number)"] = sum(
        g["n"] - 1 for g in turns.values("task_id", "number").annotate(n=Count("id"))
        if g["n"] > 1
    )  # fmt: skip
    outcome.duplicates["turns beyond one per task"] = sum(
        g["n"] - 1 for g in turns.values("task_id").annotate(n=Count("id")) if g["n"] > 1
    )
    per_slot = Counter((r["turn_id"], r["slot"]) for r in rows)
    per_turn = Counter(r["turn_id"] for r in rows)
    outcome.duplicates["candidate (turn, slot)"] = sum(n - 1 for n in per_slot.values() if n > 1)
    outcome.duplicates["candidates beyond two per turn"] = sum(
        n - 2 for n in per_turn.values() if n > 2
    )
    calls = model_calls(fake)
    extra = 0
    for row in rows:
        match = TOKEN_RE.search(row["turn__task__title"])
        made = calls[(row["endpoint__model_id"], match.group(1) if match else "")]
        if made > row["attempts"]:
            extra += made - row["attempts"]
            outcome.notes.append(f"candidate {row['id']}: {made} model calls, "
                                 f"{row['attempts']} attempts")  # fmt: skip
    outcome.duplicates["model calls beyond attempts"] = extra
    events = TaskEvent.objects.filter(task__project=project)
    outcome.duplicates["task event (task, from, to, kind)"] = sum(
        g["n"] - 1
        for g in events.values("task_id", "from_status", "to_status", "kind").annotate(
            n=Count("id")
        )
        if g["n"] > 1
    )
    outcome.duplicates = Counter({k: v for k, v in outcome.duplicates.items() if v})


def count_errors(outcome: Outcome, answers: list[Answer], end: float) -> None:
    """Error answers to requests sent up to `end` (the fault is over), and after it."""
    outcome.answers = len(answers)
    for answer in answers:
        if not answer.ok:
            bucket = outcome.errors_during if answer.at <= end else outcome.errors_after
            bucket[f"{answer.what} {answer.label}"] += 1


# --- Scenarios -----------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    stack: Stack
    contractor: Contractor
    redis: Any
    postgres: PrivatePostgres
    fake: Any
    project: Any

    def reset(self, label: str) -> None:
        """No tasks, an empty Redis, no model calls recorded, the product started afresh."""
        import redis

        from tasks.models import Task

        self.stack.stop()
        client = redis.Redis.from_url(self.redis.url)
        client.flushall()
        client.close()
        fresh_connection()
        Task.objects.filter(project=self.project).delete()
        self.contractor.creates = []
        self.stack.start(label)
        if not self.contractor.cookies:
            self.contractor.sign_in()  # sessions live in the database: once is enough
        self.fake.reset()

    def create_tasks(self) -> int:
        answers = [self.contractor.create_task() for _ in range(self.args.tasks)]
        bad = [a.label for a in answers if not a.ok]
        if bad:
            raise RuntimeError(f"task creation failed before the fault: {bad}")
        return answers[0].task_id


def worker_kill(ctx: Context, outcome: Outcome, begin: float) -> None:
    workspace = f"/tasks/{ctx.create_tasks()}/"
    wait_running(ctx.project, 2)
    loop = RequestLoop(ctx.contractor, workspace, posting=False)
    loop.start()
    fault = time.time()
    ctx.stack.kill_worker_group()
    print(f"  {since(begin)}  SIGKILL to the worker's process group", flush=True)
    ctx.stack.add_worker()
    replaced = time.time()
    print(f"  {since(begin)}  a new worker is ready ({replaced - fault:.1f} s after the kill)")
    done = wait_recovered(ctx.project, fault, ctx.args.deadline, lambda: True)
    loop.stop()
    outcome.recovery = None if done is None else done - fault
    count_errors(outcome, loop.answers, replaced)


def redis_outage(ctx: Context, outcome: Outcome, begin: float) -> None:
    workspace = f"/tasks/{ctx.create_tasks()}/"
    wait_running(ctx.project, 2)
    ready = ctx.stack.readiness_path()
    outcome.notes.append(f"readiness page: {ready}")
    loop = RequestLoop(ctx.contractor, workspace, posting=True)
    fault = time.time()
    ctx.redis.stop()
    loop.start()
    print(f"  {since(begin)}  redis-server stopped", flush=True)
    time.sleep(max(0.0, fault + ctx.args.outage - time.time()))
    loop.posting = False
    ctx.redis.start()
    back = time.time()
    print(f"  {since(begin)}  redis-server started again (empty)", flush=True)
    readiness = ctx.contractor.pages()
    done = wait_recovered(ctx.project, back, ctx.args.deadline,
                          lambda: ctx.stack.page_ok(ready, readiness))  # fmt: skip
    loop.stop()
    outcome.recovery = None if done is None else done - back
    count_errors(outcome, loop.answers, back)


def postgres_restart(ctx: Context, outcome: Outcome, begin: float) -> None:
    workspace = f"/tasks/{ctx.create_tasks()}/"
    wait_running(ctx.project, 2)
    loop = RequestLoop(ctx.contractor, workspace, posting=True)
    loop.start()
    time.sleep(1.0)  # the loop's first create lands just before the restart
    fault = time.time()
    ctx.postgres.restart()
    while not ctx.postgres.is_ready():
        time.sleep(0.05)
    back = time.time()
    print(f"  {since(begin)}  PostgreSQL restarted, accepting connections after "
          f"{back - fault:.1f} s", flush=True)  # fmt: skip
    time.sleep(10.0)
    loop.posting = False
    pages = ctx.contractor.pages()
    done = wait_recovered(
        ctx.project, back, ctx.args.deadline,
        lambda: ctx.stack.page_ok(workspace, pages) and ctx.stack.page_ok("/repos/", pages),
    )  # fmt: skip
    loop.stop()
    outcome.recovery = None if done is None else done - back
    count_errors(outcome, loop.answers, back + 10.0)


RUNNERS = {"worker-kill": worker_kill, "redis-outage": redis_outage,
           "postgres-restart": postgres_restart}  # fmt: skip


def run_scenario(ctx: Context, name: str) -> Outcome:
    outcome = Outcome(name)
    begin = time.time()
    print(f"\n=== {name}", flush=True)
    try:
        ctx.reset(name)
        print(f"  {since(begin)}  clean state; web, worker and beat up", flush=True)
        RUNNERS[name](ctx, outcome, begin)
        time.sleep(2.0)  # a late duplicate write would land now
        audit(outcome, ctx.project, ctx.contractor, ctx.fake)
    except Exception as exc:
        outcome.failure = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        with contextlib.suppress(Exception):
            audit(outcome, ctx.project, ctx.contractor, ctx.fake)
    recovered = "never" if outcome.recovery is None else f"{outcome.recovery:.1f} s"
    print(f"  {since(begin)}  recovery {recovered}; lost {outcome.lost}, "
          f"duplicated {outcome.duplicated}", flush=True)  # fmt: skip
    return outcome


# --- Report --------------------------------------------------------------------------------


def _counts(counter: Counter) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(counter.items())) or "none"


def report(outcomes: list[Outcome], args: argparse.Namespace) -> int:
    print(f"\nFault recovery (L = {args.latency:.0f} s, {args.tasks} tasks before each fault, "
          f"worker concurrency {args.concurrency}, deadline {args.deadline:.0f} s)")  # fmt: skip
    _setup.print_table(
        ["scenario", "recovery s", "lost tasks", "lost candidates", "duplicated", "answers",
         "errors during fault", "errors after", "created despite error", "target"],
        [[o.name, "never" if o.recovery is None else o.recovery, o.lost_tasks,
          o.lost_candidates, o.duplicated, o.answers, sum(o.errors_during.values()),
          sum(o.errors_after.values()), o.ghosts, "met" if o.met else "MISSED"]
         for o in outcomes],
    )  # fmt: skip
    for o in outcomes:
        print(f"\n[{o.name}]")
        if o.failure:
            print(f"  the scenario failed: {o.failure}")
        print(f"  errors during the fault: {_counts(o.errors_during)}")
        print(f"  errors after it, until recovery: {_counts(o.errors_after)}")
        print(f"  duplicated: {_counts(o.duplicates)}")
        for note in o.notes[:12]:
            print(f"  {note}")
        if len(o.notes) > 12:
            print(f"  ... and {len(o.notes) - 12} more")
    checks = []
    for o in outcomes:
        recovered = "never" if o.recovery is None else f"{o.recovery:.1f} s"
        checks += [
            (f"{o.name}: recovery <= {TARGET_SECONDS:.0f} s ({recovered})",
             not o.failure and o.recovery is not None and o.recovery <= TARGET_SECONDS),
            (f"{o.name}: 0 lost ({o.lost})", not o.failure and o.lost == 0),
            (f"{o.name}: 0 duplicated ({o.duplicated})", not o.failure and o.duplicated == 0),
        ]  # fmt: skip
    return _setup.verdict(checks)


# --- Set-up and clean-up -------------------------------------------------------------------


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    from marlin.devtools.git_http_server import GitHttpServer  # stdlib only: no Django needed
    from tests.redis_server import PrivateRedis

    tmp = Path(tempfile.mkdtemp(prefix="marlin-bench-faults-"))
    (tmp / "git").mkdir()
    (tmp / "var").mkdir()
    postgres = PrivatePostgres(free_port())
    redis_server = PrivateRedis(free_port(), tmp)
    git_server = GitHttpServer(tmp / "git")
    fake = timed_openai_server(args.latency)
    stack = Stack(tmp, args.concurrency)
    outcomes: list[Outcome] = []
    try:
        postgres.init()
        postgres.start()
        redis_server.start()
        git_server.start()
        fake.start()
        # Read by this process's settings and inherited by every process started below;
        # set explicitly so nothing from the shell points at the shared services.
        os.environ.update(
            DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE",
                                                  "marlin.settings.local"),
            DATABASE_URL=postgres.url, REDIS_URL=redis_server.url,
            CELERY_BROKER_URL=redis_server.url, CELERY_TASK_DEFAULT_QUEUE=QUEUE,
            MARLIN_VAR_DIR=str(tmp / "var"), MARLIN_REPO_CACHE_DIR=str(tmp / "repos"),
            MARLIN_GIT_ALLOWED_BASES=f"https://github.com,{git_server.base_url}",
            # The API's per-user brake on model calls would refuse the loop's creates.
            MARLIN_API_MODEL_CALLS_RATE="100000/hour",
            **{KEY_ENV: "sk-bench-not-a-real-key"},
        )  # fmt: skip
        print(f"machine:   {_setup.machine()}")
        print(f"postgres:  private cluster {postgres.root} on port {postgres.port}; migrating")
        _setup.setup(database_url=postgres.url)
        print(f"database:  {_setup.describe_database()}")
        print(f"redis:     private redis-server at {redis_server.url} (nothing saved to disk)")
        fixtures = prepare(tmp / "git", git_server.base_url, fake.base_url)
        print(f"repo:      {fixtures[0].full_name} cloned from {fixtures[0].clone_url}")
        print(f"model:     fake OpenAI at {fake.base_url}, L = {args.latency:.1f} s")
        from django.contrib.auth.models import Group

        from marlin import roles
        from marlin.tokens import api_token_create

        user, password = fixtures[2], secrets.token_urlsafe(18)
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name=roles.CONTRACTOR))
        _, key = api_token_create(user=user)
        contractor = Contractor(stack.base, user.username, password, key, fixtures)
        ctx = Context(args, stack, contractor, redis_server, postgres, fake, fixtures[1])
        for name in [args.only] if args.only else SCENARIOS:
            outcomes.append(run_scenario(ctx, name))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything")
        raise
    finally:
        stack.stop()
        redis_server.stop()
        postgres.stop()
        fake.stop()
        git_server.stop()
        if args.keep:
            print(f"kept: {tmp} and {postgres.root}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(postgres.root, ignore_errors=True)
    status = report(outcomes, args)
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")
    return status


if __name__ == "__main__":
    _setup.finish(main())
