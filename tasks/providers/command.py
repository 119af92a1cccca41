"""A coding agent's command line, run in a throwaway checkout of the pinned commit.

The command is an argument list (never a shell line); the prompt arrives on stdin; the
agent's edits become the diff and its stdout the explanation. It runs with a scrubbed
environment and is killed, with everything it started, at the time limit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from contextlib import suppress

from django.conf import settings

from repos import git_client
from tasks.llm_client import EndpointConfig, GenerationRequest, ProviderAnswer, ProviderError

DEFAULT_TIMEOUT = 540
# The generation job's soft limit is 600 s: the agent must be stopped (and the checkout
# removed) before the job itself is.
MAX_TIMEOUT = 540
MAX_OUTPUT_BYTES = 1_000_000


def _prompt_text(request: GenerationRequest) -> str:
    """The chat messages as one text for the agent's stdin: the system message first."""
    system, *conversation = request.chat_messages()
    parts = [system["content"]]
    for message in conversation:
        parts.append(f"\n## {message['role']}\n\n{message['content']}")
    return "\n".join(parts) + "\n"


def _environment(endpoint: EndpointConfig, home: str) -> dict[str, str]:
    # Nothing of the worker's environment leaks to the agent except what the endpoint names.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
    }
    for name in endpoint.parameters.get("pass_env", []):
        if name in os.environ:
            env[name] = os.environ[name]
    if endpoint.api_key_env:
        env[endpoint.api_key_env] = endpoint.api_key()
    return env


def generate(endpoint: EndpointConfig, request: GenerationRequest) -> ProviderAnswer:
    command = endpoint.parameters.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise ProviderError(
            "The model is not configured on this server; an admin has been told.",
            detail="command provider needs parameters.command as a list of strings",
        )
    if request.repo_path is None or not request.commit_sha:
        raise ProviderError("The model could not reach the repository.", detail="no checkout given")
    timeout = min(int(endpoint.parameters.get("timeout", DEFAULT_TIMEOUT)), MAX_TIMEOUT)
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    with (
        git_client.temporary_worktree(
            request.repo_path, request.commit_sha, allowed_bases=bases
        ) as worktree,
        tempfile.TemporaryDirectory(prefix="marlin-agent-home-") as home,
    ):
        git_client.apply_to_worktree(worktree, request.base_diff)
        process = subprocess.Popen(
            command,
            cwd=worktree,
            env=_environment(endpoint, home),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so the whole tree can be killed
        )
        try:
            stdout, stderr = process.communicate(_prompt_text(request).encode(), timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ProviderError(
                f"The model did not finish within {timeout} seconds.",
                detail=f"command timed out after {timeout}s",
            ) from exc
        finally:
            # On a timeout, or anything else (the job's soft limit): nothing it started lives on.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            if process.poll() is None:
                process.communicate()
        if process.returncode != 0:
            raise ProviderError(
                "The model stopped with an error.",
                detail=f"command exited {process.returncode}: {stderr[-2000:].decode(errors='replace')}",
            )
        diff = git_client.worktree_diff(worktree, request.commit_sha)
    return ProviderAnswer(
        text=stdout[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace"), diff=diff
    )
