"""Personas, a loopback git server, and a real Celery worker process for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from marlin import roles
from marlin.devtools.git_http_server import GitHttpServer
from repos import git_client
from repos import services as repo_services
from repos.models import Repository
from tests.factories import ProjectFactory, RepositoryFactory, UserFactory

BASE_DIR = Path(__file__).resolve().parent.parent

DEMO_FILES = {
    "README.md": "# calc\n\nA tiny calculator.\n",
    "calc/__init__.py": "",
    "calc/ops.py": "def add(a, b):\n    return a + b\n\n\ndef div(a, b):\n    return a / b\n",
    "tests/test_ops.py": "from calc.ops import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
}


def pytest_configure(config: pytest.Config) -> None:
    # Under CI every real service must be there: a missing one is a failure, never a skip.
    if os.environ.get("CI") == "true":
        missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
        if missing:
            raise pytest.UsageError(f"CI=true but {', '.join(missing)} is not set")
        if not os.environ["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
            raise pytest.UsageError("CI=true but DATABASE_URL is not a PostgreSQL URL")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # SQLite's IMMEDIATE transactions run racing writers one after the other, so the losing
    # path of a race never runs there. CI is always PostgreSQL (pytest_configure).
    if connection.vendor != "postgresql":
        only_pg = pytest.mark.skip(reason="races need PostgreSQL's row locks; SQLite serialises")
        for item in items:
            if "postgresql_only" in item.keywords:
                item.add_marker(only_pg)
    # STYLE 7.4: a test that needs a real broker's redelivery runs wherever Redis is
    # configured and always in CI (pytest_configure insists on REDIS_URL there); kombu's
    # filesystem transport, the embedded default, does not redeliver a rejected message.
    if os.environ.get("REDIS_URL"):
        return
    skip = pytest.mark.skip(reason="needs Redis (set REDIS_URL); always runs in CI")
    for item in items:
        if "needs_redis" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> list[str]:
    database = settings.DATABASES["default"]
    where = f"{database['HOST']}:{database['PORT']}" if database.get("HOST") else database["NAME"]
    broker = settings.CELERY_BROKER_URL.split("@")[-1]
    return [
        f"marlin: database {database['ENGINE'].rsplit('.', 1)[-1]} at {where}",
        f"marlin: broker {broker}, queue {settings.CELERY_TASK_DEFAULT_QUEUE}",
    ]


@pytest.fixture(autouse=True)
def _fresh_catalogue_cache():
    """Cached catalogue facets are cleared on commit in the app; test data is rolled back,
    which clears nothing, so each test starts without them."""
    from repos.selectors import repository_languages_forget

    repository_languages_forget()


@pytest.fixture
def contractor(db):
    return UserFactory(username="carol", role=roles.CONTRACTOR)


@pytest.fixture
def other_contractor(db):
    return UserFactory(username="dave", role=roles.CONTRACTOR)


@pytest.fixture
def reviewer(db):
    return UserFactory(username="rita", role=roles.REVIEWER)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada", role=roles.ADMIN)


@pytest.fixture
def outsider(db):
    """Logged in, but holding no role."""
    return UserFactory(username="oscar")


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    """A git smart-HTTP server on the loopback, allowed as a clone source for this run."""
    root = tmp_path_factory.mktemp("git-root")
    server = GitHttpServer(root)
    server.start()
    allowed = list(settings.MARLIN_GIT_ALLOWED_BASES)
    settings.MARLIN_GIT_ALLOWED_BASES = [*allowed, server.base_url]
    try:
        yield server
    finally:
        settings.MARLIN_GIT_ALLOWED_BASES = allowed
        server.stop()


@pytest.fixture(scope="session")
def repo_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("repo-cache")
    previous = settings.MARLIN_REPO_CACHE_DIR
    settings.MARLIN_REPO_CACHE_DIR = path
    yield path
    settings.MARLIN_REPO_CACHE_DIR = previous


@pytest.fixture
def served_repository(db, git_server: GitHttpServer, repo_cache_dir: Path):
    """A catalogue repository whose git data is served by the loopback server (not cloned yet)."""
    repository = RepositoryFactory(full_name="demo/calc")
    owner, name = repository.full_name.split("/")
    git_client.create_bare_repository(
        git_server.root / owner / f"{name}.git", DEMO_FILES, message="Initial commit"
    )
    repository.clone_url = f"{git_server.base_url}/{repository.full_name}.git"
    repository.save()
    shutil.rmtree(repo_services.repository_cache_path(repository), ignore_errors=True)
    return repository


@pytest.fixture
def ready_repository(served_repository: Repository) -> Repository:
    """The served repository, really cloned over HTTP through the production code path."""
    served_repository.queue_clone()
    repo_services.repository_clone(repository_id=served_repository.pk)
    served_repository.refresh_from_db()
    assert served_repository.is_ready, served_repository.clone_error
    return served_repository


@pytest.fixture
def project(db):
    return ProjectFactory(name="Calc project")


def _worker_env(git_server: GitHttpServer, repo_cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="marlin.settings.test",
        MARLIN_TEST_DATABASE_NAME=str(connection.settings_dict["NAME"]),
        CELERY_TASK_DEFAULT_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        MARLIN_EVIDENCE_QUEUE=settings.MARLIN_EVIDENCE_QUEUE,
        MARLIN_EVIDENCE_DIR=str(settings.MARLIN_EVIDENCE_DIR),
        MARLIN_TEST_GIT_ALLOWED_BASES=",".join(settings.MARLIN_GIT_ALLOWED_BASES),
        MARLIN_REPO_CACHE_DIR=str(repo_cache_dir),
    )
    return env


@pytest.fixture
def celery_worker_process(
    transactional_db, git_server: GitHttpServer, repo_cache_dir: Path, tmp_path: Path
) -> Iterator[subprocess.Popen]:
    """A real `celery worker` process consuming this run's queue from the configured broker."""
    from marlin.celery import app as celery_app

    # Messages an earlier test sent without a worker (reapers, captured callbacks) must
    # not be consumed by this test's worker.
    queues = [settings.CELERY_TASK_DEFAULT_QUEUE, settings.MARLIN_EVIDENCE_QUEUE]
    with celery_app.connection_for_write() as conn:
        for queue in queues:
            conn.default_channel.queue_purge(queue)
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "marlin", "worker", "--pool=prefork",
         "--concurrency=2", "--loglevel=INFO", "--without-gossip", "--without-mingle",
         "-Q", ",".join(queues)],
        cwd=BASE_DIR, env=_worker_env(git_server, repo_cache_dir),
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"Celery worker did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        print(f"--- worker log ---\n{log_path.read_text()[-4000:]}")


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.25, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)
