"""The worker's parent process does every first-use import before the pool forks.

What is checked runs in a fresh interpreter, as a worker starts: after
`llm_client.load_providers()` (the worker_init hook), building the clients a first job
builds imports no further module, so no pool process pays for it on its first job.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import django
django.setup()
from tasks.llm_client import load_providers
{preload}
from tasks.providers import anthropic_api, openai_api
before = set(sys.modules)
openai_api._client("sk-probe", "http://127.0.0.1:9", 5.0)
anthropic_api._client("sk-probe", "http://127.0.0.1:9", 5.0)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _first_client_imports(*, preload: bool) -> list[str]:
    code = PROBE.format(preload="load_providers()" if preload else "")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "marlin.settings.test"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_first_job_imports_nothing_after_load_providers():
    assert _first_client_imports(preload=True) == []


def test_without_the_preload_the_first_client_imports_its_transport():
    # The probe can see the cost it guards against: without load_providers the first
    # client construction imports the HTTP transport.
    assert len(_first_client_imports(preload=False)) > 5
