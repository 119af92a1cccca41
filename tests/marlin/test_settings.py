"""Settings come from the environment; production passes check --deploy; bad values stop start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "marlin.settings.base",
    "DJANGO_SECRET_KEY": "x7#kq" * 12 + "production-grade-secret-value-for-the-check",
    "DJANGO_ALLOWED_HOSTS": "marlin.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://marlin.example.com",
    "DATABASE_URL": "sqlite:////tmp/marlin-deploy-check.sqlite3",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MARLIN_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deploy_check_fails_when_hardening_is_switched_off() -> None:
    # Proves the check above can fail: HSTS off is a deploy warning.
    env = {**PRODUCTION_ENV, "DJANGO_SECURE_HSTS_SECONDS": "0"}
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG='maybe' is not a boolean"),
        ("DJANGO_CONN_MAX_AGE", "ten", "DJANGO_CONN_MAX_AGE='ten' is not a whole number"),
        ("DATABASE_URL", "nosuchdb://x/y", "DATABASE_URL='nosuchdb://x/y'"),
        ("DJANGO_CSRF_TRUSTED_ORIGINS", "marlin.example.com", "must start with http"),
        ("MARLIN_GIT_ALLOWED_BASES", "github.com", "must be scheme://host[:port]"),
        ("MARLIN_GIT_ALLOWED_BASES", "https://github.com/", "must be scheme://host[:port]"),
        ("REDIS_URL", "localhost:6379", "is not a redis://"),
    ],
)
def test_a_malformed_value_stops_start_up_with_a_message(
    name: str, value: str, message: str
) -> None:
    result = _manage("check", env={**PRODUCTION_ENV, name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_the_secret_key_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(PRODUCTION_ENV["DJANGO_SECRET_KEY"] + "\n")
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}
    env["DJANGO_SECRET_KEY_FILE"] = str(secret)
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
