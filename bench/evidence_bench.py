"""Evidence overhead per candidate: one evidence run with setup built (cold) and cached (warm).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench_evidence \
    REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python -m bench.evidence_bench

The repository is the integration test's (tests/evidence_repo.py): a small Python project
with a pytest suite whose setup makes a venv and installs pytest and `tomli_w` from the
package index. It is served by a git HTTP server on the loopback and cloned; the two
candidates come from the real generation path (tasks.generation_services.candidate_generate, with a
fake OpenAI server answering the fixing diff to one endpoint and the breaking diff to the
other). The recipe is the test's without its identity check: setup, the suite as a tests
check, and the contractor's acceptance test.

Each of `--runs` (5) rounds, in this process, through tasks.evidence_services.evidence_collect
(the job's one call; each run is reset to QUEUED with EvidenceRun.restart first):
  cold  the fixing candidate's run with an empty MARLIN_EVIDENCE_DIR: setup is built;
  warm  the fixing candidate's, the breaking candidate's and the base commit's runs again:
        setup is read from the cache.
Every run's wall time is split into checkout (the private worktree made and removed),
setup (prepare_environment: the build, or the cache lookup), checks (each command in the
sandbox, as run_command timed it) and the rest (claim and stored results, applying the
diff, writing the acceptance test, parsing the reports).

Bare: the same pytest commands run directly on the host, in the same trees with the same
packages (a host venv made by the same setup commands, with a fresh HOME so no pip cache,
as in the sandbox). Each warm run is followed by its bare twin on the same tree, and each
cold run by a bare setup, so both sides of a comparison share the machine's load; the
overhead per candidate is evidence run - bare, paired within a round.

There is no target in DESIGN.md for this; the script exits 1 only when the runs do not
say what the integration test says (fixes 1 / breaks 0 vs fixes 0 / breaks 1, setup built
cold and cached warm).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from bench import _setup

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marlin_bench_evidence"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
KEY_ENV = "MARLIN_MODEL_KEY_BENCH_EVIDENCE"
PROJECT = "Bench: evidence overhead"
USERNAME = "bench-evidence"
FIX_MODEL, BREAK_MODEL = "bench-fixes", "bench-breaks"
PHASES = ("checkout", "setup", "checks", "rest")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.evidence_bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="rounds (one cold run, 3 warm)")
    return parser.parse_args()


# --- Timing the job's steps ----------------------------------------------------------------


class Clock:
    """Seconds spent in the instrumented steps of the run under way."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def reset(self) -> None:
        self.spent = defaultdict(float)

    @contextlib.contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.spent[phase] += time.perf_counter() - started


def instrument(clock: Clock) -> None:
    """Wrap the checkout and the setup as evidence_services calls them (module attributes,
    looked up at each call), timing them and changing nothing else."""
    from repos import git_client
    from tasks import evidence_sandbox

    make_worktree = git_client.temporary_worktree
    prepare = evidence_sandbox.prepare_environment

    @contextlib.contextmanager
    def temporary_worktree(*args, **kwargs):
        with contextlib.ExitStack() as stack:
            with clock.timing("checkout"):
                tree = stack.enter_context(make_worktree(*args, **kwargs))
            try:
                yield tree
            finally:
                with clock.timing("checkout"):
                    stack.close()

    def prepare_environment(**kwargs):
        with clock.timing("setup"):
            return prepare(**kwargs)

    git_client.temporary_worktree = temporary_worktree
    evidence_sandbox.prepare_environment = prepare_environment


# --- Fixtures: repository, recipe, project, task with two candidates -----------------------


def prepare(git_root: Path, git_base: str, fake_base_url: str):
    from django.contrib.auth import get_user_model

    from repos import services as repo_services
    from repos.models import Repository
    from tasks import generation_services, services
    from tasks.models import Candidate, CheckRecipe, ModelEndpoint, Project, Task
    from tests import evidence_repo

    evidence_repo.serve(git_root)
    full_name = evidence_repo.FULL_NAME
    repository, _ = Repository.objects.update_or_create(
        full_name=full_name,
        defaults={
            "clone_url": f"{git_base}/{full_name}.git",
            "html_url": f"{git_base}/{full_name}",
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
    recipe, _ = CheckRecipe.objects.update_or_create(
        repository=repository, project=None,
        defaults={**evidence_repo.recipe_fields(identity=False), "is_enabled": True},
    )  # fmt: skip
    recipe.full_clean()
    endpoints = []
    for model in (FIX_MODEL, BREAK_MODEL):
        endpoint, _ = ModelEndpoint.objects.update_or_create(
            name=model,
            defaults={
                "provider": ModelEndpoint.Provider.OPENAI, "model_id": model,
                "base_url": fake_base_url, "api_key_env": KEY_ENV, "is_enabled": True,
            },
        )  # fmt: skip
        endpoint.full_clean()
        endpoints.append(endpoint)
    project, _ = Project.objects.update_or_create(
        name=PROJECT,
        defaults={"endpoint_a": endpoints[0], "endpoint_b": endpoints[1], "is_active": True},
    )
    Task.objects.filter(project=project).delete()  # earlier runs' tasks
    user, created = get_user_model().objects.get_or_create(username=USERNAME)
    if created:
        user.set_unusable_password()
        user.save()
    task = services.task_create(
        contractor=user, project=project, repository=repository, ref="",
        title="Count words once per run of whitespace", kind=Task.Kind.BUG_FIX,
        prompt=evidence_repo.PROMPT, acceptance_tests=evidence_repo.ACCEPTANCE_TESTS,
    )  # fmt: skip
    # The generation jobs were sent to this run's queue, which no worker reads: the bench
    # runs them here (the last one to finish asks for the evidence runs).
    for candidate in Candidate.objects.filter(turn__task=task):
        generation_services.candidate_generate(candidate_id=candidate.pk)
    task.refresh_from_db()
    if task.status != Task.Status.AWAITING_PREFERENCE:
        raise SystemExit(f"generation did not finish: task is {task.status}")
    return task


def fake_model():
    from tests import evidence_repo
    from tests.fakes import model_servers

    def answer(body: dict) -> str:
        fixing = body.get("model") == FIX_MODEL
        return evidence_repo.FIXING_ANSWER if fixing else evidence_repo.BREAKING_ANSWER

    return model_servers.FakeOpenAIServer(default=model_servers.ok(answer))


# --- The evidence runs ---------------------------------------------------------------------


def collect(run, clock: Clock) -> dict:
    """Reset `run` to QUEUED, run the job's service on it, and split its wall time."""
    from tasks import evidence_services

    run.refresh_from_db()
    run.restart(key=run.key, recipe=run.recipe, recipe_digest=run.recipe_digest,
                base_run=run.base_run)  # fmt: skip
    clock.reset()
    started = time.perf_counter()
    evidence_services.evidence_collect(run_id=run.pk, job_id=f"bench-{uuid.uuid4().hex[:8]}")
    wall = time.perf_counter() - started
    run.refresh_from_db()
    if run.status != run.Status.SUCCEEDED:
        log = ((run.results or {}).get("setup") or {}).get("log", "")
        raise SystemExit(f"evidence run {run.pk} failed: {run.error}\n{log[-2000:]}")
    results = run.results
    checks = [*results["checks"], *filter(None, [results.get("acceptance")])]
    check_seconds = sum(check["duration_ms"] for check in checks) / 1000
    phases = {
        "checkout": clock.spent["checkout"],
        "setup": clock.spent["setup"],
        "checks": check_seconds,
    }
    phases["rest"] = wall - sum(phases.values())
    return {
        "wall": wall,
        "cached": results["setup"]["cached"],
        "phases": phases,
        "per_check": {check["name"]: check["duration_ms"] / 1000 for check in checks},
    }


# --- Bare: the same commands on the host ---------------------------------------------------


def _host_env(home: Path, venv: Path | None) -> dict[str, str]:
    # What the sandbox gives a command (tasks.evidence_sandbox._environment), on the host.
    path = "/usr/local/bin:/usr/bin:/bin"
    return {
        "PATH": f"{venv}/bin:{path}" if venv else path,
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }


def _timed(argv: list[str], *, cwd: Path, env: dict[str, str], ok_codes=(0,)) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)  # noqa: S603
    seconds = time.perf_counter() - started
    if done.returncode not in ok_codes:
        raise SystemExit(f"{argv} exited {done.returncode}:\n{done.stdout[-2000:]!r}")
    return seconds


class Bare:
    """The recipe's commands run directly on the host: the same trees (the pinned commit,
    each candidate's change, the acceptance test written in), the same packages (a host
    venv made by the same setup commands), the sandbox's environment variables."""

    def __init__(self, task, tmp: Path, stack: contextlib.ExitStack) -> None:
        from django.conf import settings

        from repos import git_client
        from repos import services as repo_services
        from tasks import evidence_sandbox
        from tasks.models import Candidate

        self.tmp = tmp
        self.venv: Path | None = None
        self.trees: dict[str, Path] = {}
        by_model = {c.endpoint.model_id: c for c in Candidate.objects.filter(turn__task=task)}
        for label, candidate in (("fixing", by_model[FIX_MODEL]),
                                 ("breaking", by_model[BREAK_MODEL]), ("base", None)):  # fmt: skip
            tree = stack.enter_context(
                git_client.temporary_worktree(
                    repo_services.repository_cache_path(task.repository),
                    task.commit_sha,
                    allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
                )  # fmt: skip
            )
            if candidate is not None:
                git_client.apply_to_worktree(tree, candidate.diff)
            evidence_sandbox.write_acceptance_tests(tree, task.acceptance_tests)
            self.trees[label] = tree

    def setup(self, number: int) -> float:
        """venv + pip install into a fresh folder, with a fresh HOME: no pip cache."""
        from tests import evidence_repo

        env_root = self.tmp / f"bare-env-{number}"
        home = self.tmp / f"bare-home-{number}"
        home.mkdir()
        started = time.perf_counter()
        for argv in evidence_repo.SETUP_COMMANDS:
            command = [a.replace("{env}", str(env_root)) for a in argv]
            _timed(command, cwd=self.tmp, env=_host_env(home, None))
        self.venv = env_root / "venv"
        return time.perf_counter() - started

    def checks(self, label: str) -> dict[str, float]:
        from tasks import evidence
        from tests import evidence_repo

        paths = [test["path"] for test in evidence_repo.ACCEPTANCE_TESTS]
        report = self.tmp / "bare-report.xml"
        commands = {
            "tests": evidence_repo.TESTS_COMMAND,
            "Acceptance tests": evidence.DEFAULT_ACCEPTANCE_COMMAND,
        }
        times = {}
        for name, argv in commands.items():
            command = [
                a.replace(evidence.REPORT, str(report)) for a in evidence.expand(argv, files=paths)
            ]
            times[name] = _timed(command, cwd=self.trees[label], env=_host_env(self.tmp, self.venv),
                                 ok_codes=(0, 1))  # fmt: skip
        return times


# --- The rounds ----------------------------------------------------------------------------


def measure(task, evidence_root: Path, runs: int, clock: Clock, bare: Bare) -> tuple[list, list]:
    """Each round: a cold run, the bare setup, then each warm run followed by its bare
    twin on the same tree, so that both sides of a comparison share the machine's load."""
    from django.conf import settings

    from tasks.models import EvidenceRun

    runs_by_label = {
        "fixing": EvidenceRun.objects.get(task=task, candidate__endpoint__model_id=FIX_MODEL),
        "breaking": EvidenceRun.objects.get(task=task, candidate__endpoint__model_id=BREAK_MODEL),
        "base": EvidenceRun.objects.get(task=task, candidate=None),
    }
    cold, warm = [], []
    for number in range(runs):
        settings.MARLIN_EVIDENCE_DIR = evidence_root / f"round-{number}"  # empty: cold
        sample = collect(runs_by_label["fixing"], clock)
        sample["bare_setup"] = bare.setup(number)
        cold.append(sample)
        for label, run in runs_by_label.items():
            sample = collect(run, clock) | {"label": label, "bare": bare.checks(label)}
            warm.append(sample)
        cold[-1]["bare"] = warm[-3]["bare"]  # the fixing tree's, this round
        print(
            f"round {number + 1}: cold {cold[-1]['wall']:.2f} s (bare setup "
            f"{cold[-1]['bare_setup']:.2f} s), warm "
            + ", ".join(f"{s['wall']:.2f}" for s in warm[-3:])
            + " s (bare "
            + ", ".join(f"{sum(s['bare'].values()):.2f}" for s in warm[-3:])
            + " s)"
        )
    return cold, warm


# --- Report --------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:,.0f}" if values else "—"


def _range(values: list[float]) -> str:
    return f"{min(values) * 1000:,.0f} to {max(values) * 1000:,.0f}"


def report(cold: list, warm: list) -> None:
    bare_checks = [sum(s["bare"].values()) for s in warm]
    bare_setup = [s["bare_setup"] for s in cold]
    print("\nPer evidence run (ms: median, and the range of the wall time):")
    rows = []
    for label, samples in (("cold (setup built)", cold), ("warm (setup cached)", warm)):
        walls = [s["wall"] for s in samples]
        rows.append([label, len(samples), _ms(walls), _range(walls),
                     *(_ms([s["phases"][p] for s in samples]) for p in PHASES)])  # fmt: skip
    rows.append(["bare: setup on the host, no pip cache", len(bare_setup), _ms(bare_setup),
                 _range(bare_setup), "", _ms(bare_setup), "", ""])  # fmt: skip
    rows.append(["bare: the checks on the host", len(bare_checks), _ms(bare_checks),
                 _range(bare_checks), "", "", _ms(bare_checks), ""])  # fmt: skip
    _setup.print_table(["", "n", "wall", "range", *PHASES], rows)

    print(
        "\nEach check (ms, median of the warm runs): in the sandbox vs bare, same tree, same round"
    )
    check_rows = []
    for name in ("tests", "Acceptance tests"):
        boxed = [s["per_check"][name] for s in warm]
        host = [s["bare"][name] for s in warm]
        paired = [b - h for b, h in zip(boxed, host, strict=True)]
        check_rows.append([name, _ms(boxed), _ms(host), _ms(paired)])
    _setup.print_table(["check", "sandbox", "bare", "sandbox - bare (paired)"], check_rows)

    warm_over = [s["wall"] - sum(s["bare"].values()) for s in warm]
    cold_over = [s["wall"] - s["bare_setup"] - sum(s["bare"].values()) for s in cold]
    print("\nOverhead per candidate (evidence run - bare, paired within each round):")
    _setup.print_table(
        ["", "n", "median ms", "range ms"],
        [
            ["warm: run - bare checks", len(warm_over), _ms(warm_over), _range(warm_over)],
            ["cold: run - (bare setup + bare checks)", len(cold_over), _ms(cold_over),
             _range(cold_over)],
        ],
    )  # fmt: skip


def check_figures(task, cold: list, warm: list) -> list[tuple[str, bool]]:
    from tasks import evidence_services
    from tasks.models import Candidate

    figures = {}
    for model in (FIX_MODEL, BREAK_MODEL):
        candidate = Candidate.objects.get(turn__task=task, endpoint__model_id=model)
        summary = evidence_services.candidate_evidence(candidate)["summary"]
        figures[model] = (summary["fixes"], summary["breaks"])
    return [
        (f"fixing candidate: fixes 1, breaks 0 ({figures[FIX_MODEL]})",
         figures[FIX_MODEL] == (1, 0)),
        (f"breaking candidate: fixes 0, breaks 1 ({figures[BREAK_MODEL]})",
         figures[BREAK_MODEL] == (0, 1)),
        ("every cold run built setup", not any(s["cached"] for s in cold)),
        ("every warm run reused it", all(s["cached"] for s in warm)),
    ]  # fmt: skip


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    queue = f"bench-evidence-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="marlin-bench-evidence-"))
    from marlin.devtools.git_http_server import GitHttpServer  # stdlib only: no Django needed

    (tmp / "git").mkdir()
    git_server = GitHttpServer(tmp / "git")
    git_server.start()
    fake = fake_model().start()
    # Read by the settings of this process: nothing of this run lands in shared folders or
    # queues (the jobs sent on commit go to this run's queues, deleted at the end).
    if "MARLIN_EVIDENCE_SETUP_NETWORKS" not in os.environ:
        # As the test settings do: where the index sits behind a gateway at a non-public
        # address (a registry mirror), setup may reach the addresses its names have here.
        os.environ["MARLIN_EVIDENCE_SETUP_NETWORKS"] = ",".join(_index_addresses())
    os.environ.update(
        CELERY_TASK_DEFAULT_QUEUE=queue,
        MARLIN_EVIDENCE_QUEUE=f"{queue}-evidence",
        MARLIN_GIT_ALLOWED_BASES=f"https://github.com,{git_server.base_url}",
        MARLIN_REPO_CACHE_DIR=str(tmp / "repos"),
        MARLIN_EVIDENCE_DIR=str(tmp / "evidence"),
        **{KEY_ENV: "sk-bench-not-a-real-key"},
    )
    try:
        _setup.setup(database_url=DEFAULT_DATABASE_URL)
        from django.conf import settings

        from tasks import evidence_sandbox

        if reason := evidence_sandbox.availability():
            print(reason)
            return 2
        print(f"machine:   {_setup.machine()}")
        print(f"database:  {_setup.describe_database()}")
        print(f"broker:    {settings.CELERY_BROKER_URL}, queues {queue}(-evidence)")
        print(
            f"index:     {', '.join(settings.MARLIN_EVIDENCE_SETUP_HOSTS)} through the egress "
            f"proxy; extra networks: {', '.join(settings.MARLIN_EVIDENCE_SETUP_NETWORKS) or '—'}"
        )
        task = prepare(tmp / "git", git_server.base_url, fake.base_url)
        print(f"repo:      {task.repository.full_name} at {task.commit_sha[:12]}")
        with contextlib.ExitStack() as trees:
            bare = Bare(task, tmp, trees)  # its checkouts are made before the timing wrappers
            clock = Clock()
            instrument(clock)
            cold, warm = measure(task, tmp / "evidence", args.runs, clock, bare)
        checks = check_figures(task, cold, warm)
    finally:
        for name in (queue, f"{queue}-evidence"):
            _delete_queue(name)
        fake.stop()
        git_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(cold, warm)
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")
    return _setup.verdict(checks)


def _index_addresses() -> list[str]:
    """The non-loopback addresses of the setup hosts (MARLIN_EVIDENCE_SETUP_HOSTS' default)."""
    import ipaddress
    import socket

    hosts = os.environ.get("MARLIN_EVIDENCE_SETUP_HOSTS", "pypi.org,files.pythonhosted.org")
    found = set()
    for host in filter(None, hosts.split(",")):
        with contextlib.suppress(OSError):
            for *_, sockaddr in socket.getaddrinfo(host.strip(), 443, type=socket.SOCK_STREAM):
                if not ipaddress.ip_address(sockaddr[0]).is_loopback:
                    found.add(sockaddr[0])
    return sorted(found)


def _delete_queue(queue: str) -> None:
    """Remove a queue of this run, and kombu's binding tables for it, from Redis."""
    try:
        import redis
        from django.conf import settings

        if not settings.CELERY_BROKER_URL.startswith("redis"):
            return
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        keys = [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
        keys += list(client.scan_iter(match=f"{queue}*"))
        client.delete(*keys)
        client.close()
    except Exception as exc:  # cleanup must not hide the figures
        print(f"(could not delete queue {queue}: {exc})")


if __name__ == "__main__":
    _setup.finish(main())
