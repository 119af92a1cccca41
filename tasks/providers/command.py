"""A coding agent's command line, run in a throwaway checkout of the pinned commit.

The command is an argument list (never a shell line); the prompt arrives on stdin; the
agent's edits become the diff and its stdout the explanation. It runs in marlin.sandbox
(bubblewrap): the checkout is its only writable place, it sees neither the worker's
processes, files nor secrets, it reaches the network only when the endpoint sets
`"network": true`, and it is killed, with everything it started, at the time limit.
Without bubblewrap it does not run at all.
"""

from __future__ import annotations

import os

from django.conf import settings

from marlin import sandbox
from repos import git_client
from tasks.providers.base import (
    EndpointConfig,
    GenerationRequest,
    ProviderAnswer,
    ProviderError,
    is_model_key_variable,
)

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


def _environment(endpoint: EndpointConfig) -> dict[str, str]:
    # Nothing of the worker's environment leaks to the agent except what the endpoint names;
    # the sandbox sets PATH, HOME (a tmpfs) and TMPDIR, and hides the worker's /proc.
    env = {
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
    }
    for name in endpoint.parameters.get("pass_env", []):
        if not is_model_key_variable(name):
            # Saved before the rule or around the admin: a server secret stays on the server.
            raise ProviderError(
                "The model is not configured on this server; an admin has been told.",
                detail=f"pass_env names {name}, which is not a declared model variable",
            )
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
    # An agent calling its model's API needs the network; nothing else gets it.
    network = endpoint.parameters.get("network", False) is True
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    with git_client.temporary_worktree(
        request.repo_path, request.commit_sha, allowed_bases=bases,
        max_bytes=settings.MARLIN_CLONE_MAX_MB * 1024 * 1024,
    ) as worktree:  # fmt: skip
        git_client.apply_to_worktree(worktree, request.base_diff)
        try:
            result = sandbox.run(
                command,
                workdir=worktree,
                stdin=_prompt_text(request).encode(),
                env=_environment(endpoint),
                timeout=timeout,
                network=network,
                max_output_bytes=MAX_OUTPUT_BYTES,
            )
        except sandbox.SandboxUnavailable as exc:
            raise ProviderError(
                "The model cannot run on this server: its sandbox is not available; an admin "
                "has been told.",
                detail=exc.message,
            ) from exc
        if result.timed_out:
            raise ProviderError(
                f"The model did not finish within {timeout} seconds.",
                detail=f"command timed out after {timeout}s",
            )
        if result.output_exceeded:
            raise ProviderError(
                "The model wrote more output than allowed and was stopped.",
                detail=f"command output exceeded {MAX_OUTPUT_BYTES} bytes",
            )
        if result.returncode != 0:
            raise ProviderError(
                "The model stopped with an error.",
                detail=f"command exited {result.returncode}: "
                f"{result.stderr[-2000:].decode(errors='replace')}",
            )
        diff = git_client.worktree_diff(worktree, request.commit_sha)
    return ProviderAnswer(text=result.stdout.decode("utf-8", errors="replace"), diff=diff)
