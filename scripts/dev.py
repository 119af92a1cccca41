#!/usr/bin/env python3
"""Set up and run Marlin on a fresh machine with nothing but Python 3.11+.

    python3 scripts/dev.py run     install, migrate, seed the demo, start web + worker + git server
    python3 scripts/dev.py test    install with the dev extra and run the whole test suite
    python3 scripts/dev.py install install with the dev extra only (CI: once, before linting)

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
DEMO_GIT_PORT = os.environ.get("MARLIN_DEMO_GIT_PORT", "8765")
# The same folder the settings use (MARLIN_VAR_DIR), where demo_setup writes the repositories.
VAR_DIR = Path(os.environ.get("MARLIN_VAR_DIR") or ROOT / "var")


def _queues() -> list[str]:
    return [
        os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "marlin"),
        os.environ.get("MARLIN_EVIDENCE_QUEUE", "marlin-evidence"),
    ]


def _say(message: str) -> None:
    print(f"\033[1m[marlin]\033[0m {message}", flush=True)


def ensure_installed(extra: str) -> None:
    """Create .venv and install the project; skipped when pyproject.toml has not changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before any version check
        sys.exit(f"Marlin needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        _say(f"creating a virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    spec = f".[{extra}]" if extra else "."
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + spec.encode()).hexdigest()
    stamp = VENV / f".marlin-installed-{extra or 'base'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    _say(f"installing {spec} (first run takes a minute)")
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "-e", spec], cwd=ROOT, check=True)
    stamp.write_text(digest)


def manage(*args: str) -> None:
    subprocess.run([str(PYTHON), "manage.py", *args], cwd=ROOT, check=True)


def _port_is_free(port: str) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", int(port)))
        except OSError:
            return False
    return True


def _stop(signum: int, frame: object) -> None:
    # SIGTERM must unwind through run()'s finally, or the children outlive us.
    raise KeyboardInterrupt


def run(argv: list[str]) -> int:
    port = argv[0] if argv else os.environ.get("MARLIN_PORT", "8000")
    for needed, what in ((port, "web server"), (DEMO_GIT_PORT, "demo git server")):
        if not _port_is_free(needed):
            sys.exit(
                f"Port {needed} (the {what}) is in use; stop what uses it, or choose another "
                "port: 'python3 scripts/dev.py run 8080' / MARLIN_DEMO_GIT_PORT=8766."
            )
    signal.signal(signal.SIGTERM, _stop)
    ensure_installed("")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="marlin.settings.local")
    os.environ.update(env)
    manage("migrate", "--noinput", "-v", "0")
    manage("demo_setup", "--git-port", DEMO_GIT_PORT)
    commands = {
        "git server": [str(PYTHON), "-m", "marlin.devtools.git_http_server", "--root",
                       str(VAR_DIR / "demo-git"), "--port", DEMO_GIT_PORT],
        # Generation and evidence (the repository checks) queues, both in one worker here.
        "worker": [str(PYTHON), "-m", "celery", "-A", "marlin", "worker", "--loglevel=INFO",
                   "--concurrency=2", "--beat", "-Q", ",".join(_queues())],
        "web": [str(PYTHON), "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
    }  # fmt: skip
    processes = {name: subprocess.Popen(cmd, cwd=ROOT, env=env) for name, cmd in commands.items()}
    _say(f"Marlin is running: open http://127.0.0.1:{port}/  (Ctrl-C stops everything)")
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [name for name, p in processes.items() if p.poll() is not None]
        _say(f"{', '.join(dead)} stopped; shutting down")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def test(argv: list[str]) -> int:
    ensure_installed("dev")
    where = os.environ.get("DATABASE_URL", "SQLite (embedded default)")
    broker = os.environ.get("REDIS_URL") or "kombu filesystem transport (embedded default)"
    _say(f"database: {where.split('@')[-1]}; broker: {broker.split('@')[-1]}")
    return subprocess.run([str(PYTHON), "-m", "pytest", *argv], cwd=ROOT).returncode


def install(argv: list[str]) -> int:
    # The stamp it leaves makes the `test` that follows skip the install: CI installs once.
    ensure_installed("dev")
    return 0


COMMANDS = {"run": run, "test": test, "install": install}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
