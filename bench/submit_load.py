"""Submit and autosave under load (issue 19): server CPU per request, and 50 users for 60 s
against gunicorn as production runs it, side by side with Label Studio's annotation create.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench_s \\
    REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python -m bench.submit_load

Targets: <= 15 ms of server CPU (gunicorn master + workers, /proc utime + stime) per submit
and per autosave; 50 users, 1 s think time: p99 <= 300 ms and no error. Label Studio is
measured when LABEL_STUDIO_VENV (default /opt/ls-venv) holds a `label-studio` 1.23.2; else
the table says it was not measured. BENCH_USERS / BENCH_SECONDS / BENCH_CPU_REQUESTS shrink
the run (a smoke run); the targets are judged on whatever ran.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import _setup

ROOT = Path(__file__).resolve().parent.parent
USERS = int(os.environ.get("BENCH_USERS", "50"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
THINK = 1.0
CPU_REQUESTS = int(os.environ.get("BENCH_CPU_REQUESTS", "150"))
# What-if only (e.g. "--threads 4"): added to the Dockerfile's gunicorn options, and printed.
EXTRA_GUNICORN = os.environ.get("BENCH_GUNICORN_EXTRA", "").split()
CPU_TARGET_MS, P99_TARGET_MS = 15.0, 300.0
# Enough tasks that no user runs out in SECONDS (one submit per 2 think times at best).
TASKS_PER_USER = int(SECONDS / (2 * THINK)) + 3
DIFF = "".join(f"+    value_{n} = compute({n})  # a changed line\n" for n in range(300))
JUSTIFICATION = "A guards the zero divisor; B crashes on it."
LS_VENV = Path(os.environ.get("LABEL_STUDIO_VENV", "/opt/ls-venv"))
LS_DATA = Path(
    os.environ.get("LABEL_STUDIO_BENCH_DATA")
    or Path.home() / ".cache" / "marlin-bench-label-studio"
)
PROD_ENV = {
    # Production settings (marlin.settings.base), behind one TLS proxy as deployed: the
    # client sends X-Forwarded-Proto/-For as the proxy would.
    "DJANGO_SETTINGS_MODULE": "marlin.settings.base",
    "DJANGO_SECRET_KEY": "bench-submit-load-key-" + "x" * 32,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "DJANGO_DEBUG": "false",
}


def production_gunicorn() -> list[str]:
    """gunicorn's options from the Dockerfile's CMD (workers, threads, ...), without the
    bind address; the bench runs the server as production does."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD ") and "gunicorn" in line:
            words = json.loads(line[4:])
            break
    else:
        raise SystemExit("no gunicorn CMD in the Dockerfile")
    options = words[words.index("marlin.wsgi:application") + 1 :]
    kept, skip = [], False
    for word in options:
        if skip:
            skip = False
        elif word in ("--bind", "-b"):
            skip = True
        else:
            kept.append(word)
    return kept + EXTRA_GUNICORN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on {port} after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


# --- Server CPU from /proc ------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                todo += [
                    int(c)
                    for c in Path(f"/proc/{current}/task/{task}/children").read_text().split()
                ]
        except OSError:
            pass
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and all its descendants alive now (the workers)."""
    total = 0
    for each in _tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / TICK


# --- Data, set-based ------------------------------------------------------------------------


def make_data(users: int, tasks_each: int, *, prefix: str) -> list[dict]:
    """`users` contractors with `tasks_each` tasks awaiting judgement each (two succeeded
    candidates of a 300-line diff), a session and a CSRF token each. New tasks every run."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.utils.module_loading import import_string

    from marlin import roles
    from repos.models import Repository
    from tasks.models import Candidate, ModelEndpoint, Project, ProjectEndpoint, Task, Turn

    first, _ = ModelEndpoint.objects.get_or_create(
        name="bench-s-alpha", defaults={"provider": ModelEndpoint.Provider.DEMO, "model_id": "a"}
    )
    second, _ = ModelEndpoint.objects.get_or_create(
        name="bench-s-beta", defaults={"provider": ModelEndpoint.Provider.DEMO, "model_id": "b"}
    )
    first, second = sorted([first, second], key=lambda e: e.pk)
    project, made = Project.objects.get_or_create(
        name="bench-s submit load", defaults={"min_justification_chars": 20}
    )
    if made:
        for endpoint in (first, second):
            ProjectEndpoint.objects.create(project=project, endpoint=endpoint)
    repository, _ = Repository.objects.get_or_create(
        full_name="bench-s/load",
        defaults={"clone_url": "https://github.com/bench-s/load.git", "default_branch": "main"},
    )
    store = import_string(settings.SESSION_ENGINE + ".SessionStore")
    people = []
    for n in range(users):
        user, made = User.objects.get_or_create(username=f"{prefix}{n}")
        if made:
            user.set_unusable_password()
            user.save()
            roles.user_set_role(user=user, role=roles.CONTRACTOR)
        tasks = Task.objects.bulk_create(
            Task(
                project=project,
                repository=repository,
                contractor=user,
                base_ref="main",
                commit_sha="0" * 40,
                title=f"Bench task {i}",
                kind=Task.Kind.BUG_FIX,
                status=Task.Status.AWAITING_PREFERENCE,
                first_endpoint=first,
                second_endpoint=second,
            )
            for i in range(tasks_each)
        )
        turns = Turn.objects.bulk_create(
            Turn(task=task, number=1, prompt="Make div safe.", has_identical_candidates=False)
            for task in tasks
        )
        Candidate.objects.bulk_create(
            Candidate(
                turn=turn,
                slot=slot,
                endpoint=endpoint,
                status=Candidate.Status.SUCCEEDED,
                diff=DIFF,
                raw_answer="```diff\n" + DIFF + "```\n",
            )
            for turn in turns
            for slot, endpoint in (("A", first), ("B", second))
        )
        # A signed-in session as django.contrib.auth.login leaves it (no password round).
        session = store()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        people.append(
            {
                "session": session.session_key,
                "csrf": secrets.token_hex(16),  # 32 characters of [0-9a-f], as Django makes
                "tasks": [t.pk for t in tasks],
                "ip": f"10.1.{n // 250}.{n % 250 + 1}",
            }
        )
    for n, person in enumerate(people):
        person["axes"] = project.axis_keys
        person["rng"] = random.Random(f"{prefix}{n}")  # noqa: S311 - synthetic data
    return people


def verdict(person: dict) -> dict:
    """A judgement as people make them: either side preferred, scores that agree with it
    and vary, words of its own. A bench of identical judgements would trip the reviewers'
    flags (near-duplicate justification, one slot, flat scores) on every submit, which
    real contractors do not."""
    rng = person["rng"]
    better, worse = ("A", "B") if rng.random() < 0.5 else ("B", "A")
    scores = {
        better: {axis: rng.randint(4, 5) for axis in person["axes"]},
        worse: {axis: rng.randint(1, 2) for axis in person["axes"]},
    }
    words = " ".join(rng.choices(_setup.CONTENT, k=rng.randint(12, 24)))
    return {
        "preference": -2 if better == "A" else 2,
        "scores": scores,
        "justification": f"{better} is better: {words}.",
    }


# --- The client -----------------------------------------------------------------------------


def form_body(fields: dict) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


def post(port: int, path: str, body: bytes, headers: dict) -> tuple[int, float]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, (time.perf_counter() - start) * 1000
    except (OSError, http.client.HTTPException):
        return 0, (time.perf_counter() - start) * 1000
    finally:
        conn.close()


def marlin_headers(port: int, person: dict, content_type: str) -> dict:
    return {
        "Host": f"127.0.0.1:{port}",
        "Cookie": f"sessionid={person['session']}; csrftoken={person['csrf']}",
        "X-CSRFToken": person["csrf"],
        "Referer": f"https://127.0.0.1:{port}/tasks/",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": person["ip"],
        "Content-Type": content_type,
    }


FORM = "application/x-www-form-urlencoded"


def marlin_request(port: int, person: dict, kind: str, task: int) -> tuple[int, float, bool]:
    """One request of `kind`; returns (status, ms, whether the status is the expected one)."""
    if kind == "autosave":
        body = form_body({"justification": "so far: A guards the divisor", "preference": "-2"})
        status, ms = post(port, f"/tasks/{task}/draft/", body, marlin_headers(port, person, FORM))
        return status, ms, status == 204
    if kind == "heartbeat":
        body = form_body({"seconds": "5"})
        path = f"/tasks/{task}/heartbeat/"
        status, ms = post(port, path, body, marlin_headers(port, person, FORM))
        return status, ms, status == 204
    judged = verdict(person)
    if kind == "submit":
        form = {
            "preference": str(judged["preference"]),
            "justification": judged["justification"],
            "action": "submit",
            **{
                f"score_{slot}_{axis}": str(value)
                for slot, values in judged["scores"].items()
                for axis, value in values.items()
            },
        }
        body = form_body(form)
        status, ms = post(port, f"/tasks/{task}/submit/", body, marlin_headers(port, person, FORM))
        return status, ms, status == 302
    body = json.dumps(judged).encode()
    headers = marlin_headers(port, person, "application/json")
    status, ms = post(port, f"/api/tasks/{task}/submit/", body, headers)
    return status, ms, status == 200


def calibration_ms() -> float:
    """CPU ms of a fixed pure-Python workload (best of 5). This machine is a VM whose speed
    moved by up to 2x between runs minutes apart (the heartbeat's CPU, whose code did not
    change, read 3.9 and 7.1 ms): the figure says which speed a run had. On 2026-12-03 it
    read 41-69 ms between runs of one afternoon."""
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
        best = min(best, time.process_time() - start)
    return round(best * 1000, 1)


def cpu_per_request(port: int, pid: int, person: dict) -> list[list[object]]:
    """CPU_REQUESTS of each kind, one after another from one client: the server's CPU
    (master + workers) over the run, divided by the number of requests."""
    rows = []
    tasks = iter(person["tasks"])
    beat_task = person["tasks"][-1]
    for kind in ("autosave", "submit", "api submit", "heartbeat"):
        # Autosave and heartbeat go to tasks still awaiting judgement; each submit uses one.
        plan = [beat_task if kind == "heartbeat" else next(tasks) for _ in range(CPU_REQUESTS)]
        if kind == "autosave":
            tasks = iter(plan + list(tasks))  # the same tasks are submitted next
        before, wall, bad, times = cpu_seconds(pid), time.perf_counter(), 0, []
        for task in plan:
            _, ms, ok = marlin_request(port, person, kind, task)
            bad += not ok
            times.append(ms)
        used = cpu_seconds(pid) - before
        rows.append(
            [
                f"Marlin {kind}",
                CPU_REQUESTS,
                used * 1000 / CPU_REQUESTS,
                _setup.percentile(times, 50),
                CPU_REQUESTS / (time.perf_counter() - wall),
                bad,
            ]
        )
    return rows


def load(users: list, worker, seconds: float) -> dict[str, list]:
    """Each user in its own thread runs `worker(user, record)` until the time is up."""
    results: dict[str, list] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def record(kind: str, ms: float, ok: bool) -> None:
        with lock:
            results.setdefault(kind, []).append((ms, ok))

    def run(user) -> None:
        # Users start spread over the first think time, as real ones would.
        time.sleep(THINK * users.index(user) / len(users))
        worker(user, record, lambda: time.monotonic() < stop_at)

    threads = [threading.Thread(target=run, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def marlin_user(port: int):
    def work(person: dict, record, going) -> None:
        for task in person["tasks"]:
            for kind in ("autosave", "submit"):
                if not going():
                    return
                _, ms, ok = marlin_request(port, person, kind, task)
                record(kind, ms, ok)
                time.sleep(THINK)

    return work


def load_rows(name: str, results: dict[str, list], seconds: float, cpu: float) -> list[list]:
    rows = []
    total = sum(len(v) for v in results.values())
    for kind, samples in sorted(results.items()):
        times = [ms for ms, _ in samples]
        errors = sum(1 for _, ok in samples if not ok)
        rows.append(
            [
                f"{name} {kind}",
                len(samples),
                (len(samples) - errors) / seconds,
                _setup.percentile(times, 50),
                _setup.percentile(times, 95),
                _setup.percentile(times, 99),
                max(times),
                errors,
                cpu * 1000 / total if total else float("nan"),
            ]
        )
    return rows


# --- Label Studio ---------------------------------------------------------------------------

LS_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="preference" toName="text" choice="single">
    <Choice value="A"/><Choice value="B"/><Choice value="Same"/>
  </Choices>
  <TextArea name="justification" toName="text"/>
</View>"""
LS_TOKEN = "benchs" + "0123456789abcdef0123456789abcdef01"


def ls_request(port: int, method: str, path: str, payload=None) -> tuple[int, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Authorization": f"Token {LS_TOKEN}", "Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data.strip() else None)
    finally:
        conn.close()


def label_studio(users: int, seconds: float) -> tuple[list[list], str]:
    """Label Studio 1.23.2 from its own venv, as its CLI starts it (`label-studio start`,
    SQLite in its own data folder), the same load against POST /api/tasks/<id>/annotations/."""
    binary = LS_VENV / "bin" / "label-studio"
    if not binary.exists():
        return [], f"Label Studio not measured: no {binary} (LABEL_STUDIO_VENV)."
    port = free_port()
    LS_DATA.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    env.update({"LABEL_STUDIO_BASE_DATA_DIR": str(LS_DATA), "LOG_LEVEL": "WARNING"})
    log = open(LS_DATA / "server.log", "w")  # noqa: SIM115 - closed below
    command = [str(binary), "start", "--no-browser", "--internal-host", "127.0.0.1",
               "-p", str(port), "--data-dir", str(LS_DATA), "--username", "bench@example.com",
               "--password", "bench-password-123", "--user-token", LS_TOKEN]  # fmt: skip
    proc = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for_port(port, 600, proc)  # the first start creates its database: minutes
        # Label Studio 1.23 makes new organizations refuse the legacy `Token` keys that
        # --user-token sets; the bench turns them back on, as an admin would in its settings.
        with sqlite3.connect(LS_DATA / "label_studio.sqlite3") as db:
            db.execute("UPDATE jwt_auth_jwtsettings SET legacy_api_tokens_enabled = 1")
        time.sleep(1)
        status, project = ls_request(
            port, "POST", "/api/projects", {"title": "bench", "label_config": LS_CONFIG}
        )
        if status != 201:
            return [], f"Label Studio not measured: creating a project answered {status}."
        per_user = int(seconds / THINK) + 3
        data = [{"text": f"diff {n}\n" + DIFF[:2000]} for n in range(users * per_user)]
        status, _ = ls_request(port, "POST", f"/api/projects/{project['id']}/import", data)
        ids = []
        page = 1
        while len(ids) < len(data):
            path = f"/api/tasks?project={project['id']}&page_size=1000&page={page}&fields=all"
            status, answer = ls_request(port, "GET", path)
            got = answer["tasks"] if isinstance(answer, dict) else answer
            if not got:
                break
            ids += [t["id"] for t in got]
            page += 1
        people = [ids[n * per_user : (n + 1) * per_user] for n in range(users)]
        result = [
            {"from_name": "preference", "to_name": "text", "type": "choices",
             "value": {"choices": ["A"]}},
            {"from_name": "justification", "to_name": "text", "type": "textarea",
             "value": {"text": [JUSTIFICATION]}},
        ]  # fmt: skip
        body = json.dumps({"result": result}).encode()
        headers = {
            "Authorization": f"Token {LS_TOKEN}",
            "Content-Type": "application/json",
            "Host": f"127.0.0.1:{port}",
        }

        def work(tasks: list[int], record, going) -> None:
            for task in tasks:
                if not going():
                    return
                status, ms = post(port, f"/api/tasks/{task}/annotations/", body, headers)
                record("annotation create", ms, status == 201)
                time.sleep(THINK)

        before = cpu_seconds(proc.pid)
        results = load(people, work, seconds)
        cpu = cpu_seconds(proc.pid) - before
        return load_rows("Label Studio", results, seconds, cpu), "Label Studio 1.23.2 measured."
    finally:
        stop(proc)
        log.close()


# --- Main -----------------------------------------------------------------------------------


def main() -> None:
    os.environ.update(PROD_ENV)
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/marlin_bench_s")
    _setup.setup()
    from django.conf import settings

    print(f"Machine: {_setup.machine()}")
    print(f"Database: {_setup.describe_database()}; sessions: {settings.SESSION_ENGINE}")
    cpu_person = make_data(1, 2 * CPU_REQUESTS + 1, prefix="bench-s-cpu-")[0]
    people = make_data(USERS, TASKS_PER_USER, prefix="bench-s-")
    from django.db import connection, connections

    # Fresh statistics, as autovacuum would have them after such a bulk insert: without them
    # PostgreSQL plans the reviewers' flag queries on a table it believes empty (seconds).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    connections.close_all()

    port = free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    options = production_gunicorn()
    command = [gunicorn, "marlin.wsgi:application", "--bind", f"127.0.0.1:{port}", *options]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, 60, server)
        # Warm every worker (imports, connections) before anything is measured.
        warm = cpu_person["tasks"][-1]
        for _ in range(20):
            marlin_request(port, cpu_person, "heartbeat", warm)
        calibration = [calibration_ms()]
        cpu_rows = cpu_per_request(port, server.pid, cpu_person)
        calibration.append(calibration_ms())
        before = cpu_seconds(server.pid)
        results = load(people, marlin_user(port), SECONDS)
        load_cpu = cpu_seconds(server.pid) - before
    finally:
        stop(server)
        errors.seek(0)
        problems = [
            line for line in errors.read().decode(errors="replace").splitlines()
            if "Traceback" in line or "Error" in line or "[CRITICAL]" in line
        ]  # fmt: skip
        errors.close()
    if problems:
        print(f"gunicorn said ({len(problems)} lines, the last 10):")
        print("\n".join(problems[-10:]))
    rows = load_rows("Marlin", results, SECONDS, load_cpu)
    ls_rows, ls_note = label_studio(USERS, SECONDS)

    print(
        f"\ngunicorn {' '.join(options)} (the Dockerfile's"
        f"{', plus ' + ' '.join(EXTRA_GUNICORN) if EXTRA_GUNICORN else ''})"
    )
    print(f"Server CPU per request ({CPU_REQUESTS} sequential requests each; gunicorn master "
          "+ workers, utime + stime)")  # fmt: skip
    _setup.print_table(["request", "n", "CPU ms/req", "p50 ms", "req/s", "errors"], cpu_rows)
    print(f"Machine speed (calibration_ms, before and after the CPU runs): "
          f"{calibration[0]} / {calibration[1]} ms")  # fmt: skip
    print(f"\n{USERS} users, {SECONDS:.0f} s, think time {THINK:.0f} s")
    headers = ["what", "n", "ok/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "CPU ms/req"]
    _setup.print_table(headers, rows + ls_rows)
    print(ls_note)

    cpu = {row[0]: row[2] for row in cpu_rows}
    checks = [
        (f"submit <= {CPU_TARGET_MS} ms CPU", cpu["Marlin submit"] <= CPU_TARGET_MS),
        (f"api submit <= {CPU_TARGET_MS} ms CPU", cpu["Marlin api submit"] <= CPU_TARGET_MS),
        (f"autosave <= {CPU_TARGET_MS} ms CPU", cpu["Marlin autosave"] <= CPU_TARGET_MS),
        ("no error in the CPU runs", all(row[5] == 0 for row in cpu_rows)),
    ]
    for row in rows:
        checks.append((f"{row[0]}: p99 <= {P99_TARGET_MS} ms under load", row[5] <= P99_TARGET_MS))
        checks.append((f"{row[0]}: no error under load", row[7] == 0))
    _setup.finish(_setup.verdict(checks))


if __name__ == "__main__":
    main()
