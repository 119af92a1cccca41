"""docker-compose.yml, the Dockerfile and .env.example agree with the code they deploy.

Docker is not needed: the files are parsed and every module, app and variable they name is
checked against the project itself.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app

BASE_DIR = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = BASE_DIR / "docker-compose.yml"
DOCKERFILE = BASE_DIR / "Dockerfile"
ENV_EXAMPLE = BASE_DIR / ".env.example"
SETTINGS_DIR = BASE_DIR / "marlin" / "settings"

APP_SERVICES = ("web", "worker")
BACKING_SERVICES = ("postgres", "redis")
# Read by Django or the container itself rather than by marlin/settings/*.py.
KNOWN_SERVICE_VARS = {"DJANGO_SETTINGS_MODULE", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}

_SETTINGS_READ = re.compile(
    r"""(?:os\.environ\.get\(|os\.environ\[|env_(?:bool|int|list|secret|db)\()\s*["']([A-Z][A-Z0-9_]*)["']"""
)
_SECRET_READ = re.compile(r"""env_secret\(\s*["']([A-Z][A-Z0-9_]*)["']""")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services() -> dict:
    return _compose()["services"]


def _environment(service: dict) -> dict[str, str]:
    """A service's `environment:` as a dict, whether written as a mapping or a KEY=VALUE list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _command(service: dict) -> str:
    command = service.get("command") or ""
    return " ".join(command) if isinstance(command, list) else command


def _settings_vars() -> set[str]:
    """Every environment variable marlin/settings/*.py reads, parsed from their source."""
    names: set[str] = set()
    for path in SETTINGS_DIR.glob("*.py"):
        source = path.read_text()
        names.update(_SETTINGS_READ.findall(source))
        # env_secret(NAME) also reads NAME_FILE (docker secrets).
        names.update(f"{name}_FILE" for name in _SECRET_READ.findall(source))
    return names


def _env_example_vars() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"([A-Z][A-Z0-9_]*)=", line.strip())
        if match:
            names.add(match.group(1))
    return names


def test_the_settings_parser_finds_the_variables_the_settings_read():
    names = _settings_vars()
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE"} <= names
    assert {"DJANGO_DEBUG", "DJANGO_ALLOWED_HOSTS", "MARLIN_REPO_CACHE_DIR"} <= names


def test_compose_defines_postgres_redis_web_and_worker():
    services = _services()
    missing = {*BACKING_SERVICES, *APP_SERVICES} - set(services)
    assert not missing, f"docker-compose.yml lacks services {sorted(missing)}"


@pytest.mark.parametrize(
    ("service", "probe"), [("postgres", "pg_isready"), ("redis", "redis-cli ping")]
)
def test_postgres_and_redis_have_healthchecks(service, probe):
    healthcheck = _services()[service].get("healthcheck")
    assert healthcheck, f"{service} has no healthcheck"
    test = healthcheck["test"]
    text = " ".join(test) if isinstance(test, list) else test
    assert probe in text, f"{service} healthcheck {test!r} does not run {probe}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_wait_for_healthy_postgres_and_redis(service):
    depends_on = _services()[service].get("depends_on")
    assert isinstance(depends_on, dict), f"{service}.depends_on must be a mapping with conditions"
    for backing in BACKING_SERVICES:
        assert backing in depends_on, f"{service} does not depend on {backing}"
        assert depends_on[backing].get("condition") == "service_healthy", (
            f"{service} starts before {backing} is healthy"
        )


def test_the_web_service_runs_migrations_and_then_gunicorn():
    command = _command(_services()["web"])
    assert "manage.py migrate --noinput" in command
    assert command.index("migrate") < command.index("gunicorn")


def _gunicorn_apps(text: str) -> list[str]:
    """The `module:attribute` each gunicorn invocation in TEXT serves."""
    apps = []
    for match in re.finditer(r"\bgunicorn\b(.*)", text):
        targets = re.findall(r"\b([A-Za-z_][\w.]*:[A-Za-z_]\w*)", match.group(1))
        apps += targets[:1]
    return apps


def _import_attribute(target: str):
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def test_the_gunicorn_application_in_compose_imports():
    apps = _gunicorn_apps(_command(_services()["web"]))
    assert apps == ["marlin.wsgi:application"]
    application = _import_attribute(apps[0])
    assert callable(application)


def test_the_dockerfile_default_command_serves_the_same_application():
    cmd_lines = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD")]
    apps = _gunicorn_apps("\n".join(cmd_lines))
    assert apps, "the Dockerfile never starts gunicorn"
    assert set(apps) == set(_gunicorn_apps(_command(_services()["web"])))


def test_the_worker_celery_app_imports():
    command = _command(_services()["worker"])
    match = re.search(r"\bcelery\s+(?:-A|--app)[\s=]+(\S+)", command)
    assert match, f"worker command {command!r} names no Celery app"
    assert match.group(1) == "marlin"
    # The same lookup `celery -A marlin` does.
    app = find_app(match.group(1))
    assert isinstance(app, Celery)
    assert app is importlib.import_module("marlin.celery").app


def test_every_settings_module_named_in_compose_and_the_dockerfile_imports():
    modules = {
        _environment(service)["DJANGO_SETTINGS_MODULE"]
        for service in _services().values()
        if "DJANGO_SETTINGS_MODULE" in _environment(service)
    }
    modules |= set(re.findall(r"DJANGO_SETTINGS_MODULE=([\w.]+)", DOCKERFILE.read_text()))
    assert modules, "neither docker-compose.yml nor the Dockerfile sets DJANGO_SETTINGS_MODULE"
    for name in sorted(modules):
        module = importlib.import_module(name)
        assert hasattr(module, "INSTALLED_APPS"), f"{name} is not a settings module"
    for service in APP_SERVICES:
        assert "DJANGO_SETTINGS_MODULE" in _environment(_services()[service]), (
            f"{service} would fall back to marlin.settings.local"
        )


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_set_only_variables_the_settings_read(service):
    known = _settings_vars() | KNOWN_SERVICE_VARS
    env = _environment(_services()[service])
    assert env, f"{service} sets no environment"
    unknown = set(env) - known
    assert not unknown, f"{service} sets {sorted(unknown)}, which no settings module reads"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_point_at_the_compose_postgres_and_redis(service):
    env = _environment(_services()[service])
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    assert env["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?"), (
        "the secret key must come from the environment, never a default"
    )


def _interpolate(value: str) -> str:
    """Resolve compose's ${VAR:-default} and ${VAR:?error} as an operator who set only the key."""

    def resolve(match: re.Match) -> str:
        name, operator, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if operator.endswith("?"):
            return f"compose-test-{name.lower()}-".ljust(50, "x")
        return rest if operator.endswith("-") else ""

    return re.sub(r"\$\{([A-Z][A-Z0-9_]*)(:?[-?])?([^}]*)\}", resolve, value)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_the_compose_environment_configures_the_production_settings(service, tmp_path):
    env = {key: _interpolate(value) for key, value in _environment(_services()[service]).items()}
    env["MARLIN_VAR_DIR"] = str(tmp_path)  # the container's var/ is not this checkout's
    probe = (
        "import json, django; from django.conf import settings; django.setup(); "
        "db = settings.DATABASES['default']; "
        "print(json.dumps({'engine': db['ENGINE'], 'host': db['HOST'], 'name': db['NAME'], "
        "'broker': settings.CELERY_BROKER_URL, 'cache': str(settings.MARLIN_REPO_CACHE_DIR), "
        "'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS}))"
    )
    keep = {"PATH", "HOME", "LANG", "SYSTEMROOT"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=BASE_DIR,
        env={**{k: v for k, v in os.environ.items() if k in keep}, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert (loaded["host"], loaded["name"]) == ("postgres", "marlin")
    assert loaded["broker"] == env["CELERY_BROKER_URL"]
    assert loaded["cache"] == env["MARLIN_REPO_CACHE_DIR"]
    assert loaded["debug"] is False
    assert loaded["hosts"], "DJANGO_ALLOWED_HOSTS resolves to nothing"


def test_web_and_worker_share_one_volume_for_the_repository_cache():
    mounts = {}
    for service in APP_SERVICES:
        definition = _services()[service]
        cache_dir = _environment(definition)["MARLIN_REPO_CACHE_DIR"]
        volumes = [v for v in definition.get("volumes", []) if v.split(":")[1] == cache_dir]
        assert volumes, f"{service} mounts nothing at MARLIN_REPO_CACHE_DIR={cache_dir}"
        mounts[service] = volumes[0].split(":")[0]
    assert len(set(mounts.values())) == 1, f"web and worker mount different volumes: {mounts}"
    assert mounts["web"] in (_compose().get("volumes") or {}), "the cache is not a named volume"


def test_env_example_covers_every_variable_the_settings_read():
    missing = _settings_vars() - _env_example_vars()
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_env_example_sets_only_variables_that_something_reads():
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    unknown = _env_example_vars() - _settings_vars() - interpolated - KNOWN_SERVICE_VARS
    assert not unknown, f".env.example sets {sorted(unknown)}, which nothing reads"
