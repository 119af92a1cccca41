"""What a provider takes and gives back: the types shared by tasks.llm_client and every
provider module, so neither imports the other for them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class ProviderError(Exception):
    """A provider could not answer.

    `message` is shown to contractors, so it never names the provider or model; `detail`
    (for logs and admins) may. `transient` errors (429, 5xx, timeouts, connection errors,
    malformed answers) are retried; `retry_after` is the server's Retry-After, in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.retry_after = retry_after
        self.detail = detail or message


def is_model_key_variable(name: str) -> bool:
    """Whether an endpoint may name this environment variable (its key, or one handed to a
    coding agent): declared in MARLIN_MODEL_KEY_NAMES or prefixed MARLIN_MODEL_KEY_, never
    anything else the worker's environment holds (its secret key, database URL...)."""
    from django.conf import settings

    return name in settings.MARLIN_MODEL_KEY_NAMES or (
        name.startswith(settings.MARLIN_MODEL_KEY_PREFIX)
        and len(name) > len(settings.MARLIN_MODEL_KEY_PREFIX)
    )


@dataclass(frozen=True)
class EndpointConfig:
    provider: str
    name: str
    model_id: str
    parameters: dict
    base_url: str = ""
    api_key_env: str = ""

    def api_key(self) -> str:
        """The key from the environment variable the endpoint names; never stored anywhere."""
        if not self.api_key_env:
            return ""
        if not is_model_key_variable(self.api_key_env):
            # Saved before the rule, or written around the admin: never send it anywhere.
            raise ProviderError(
                "The model is not configured on this server; an admin has been told.",
                detail=f"{self.api_key_env} is not a declared model key variable",
            )
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise ProviderError(
                "The model is not configured on this server; an admin has been told.",
                detail=f"environment variable {self.api_key_env} is not set",
            )
        return key


@dataclass(frozen=True)
class GenerationRequest:
    system: str
    messages: list[dict[str, str]]
    # Repository context: every path at the pinned commit, and some files' text.
    paths: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    # For providers that work on a checkout (command): the bare clone and the base commit,
    # plus the change the conversation has reached so far (applied before the agent runs).
    repo_path: Path | None = None
    commit_sha: str = ""
    base_diff: str = ""

    def chat_messages(self) -> list[dict[str, str]]:
        """The whole prompt as chat messages: the system message, then the conversation.

        What every provider sends (Anthropic's API takes the first as `system`, the command
        provider writes them to stdin) and what is kept per candidate for the exports.
        """
        return [{"role": "system", "content": self.system}, *self.messages]


@dataclass(frozen=True)
class ProviderAnswer:
    """What a model said. `diff` is set by providers that produce the change themselves."""

    text: str
    diff: str | None = None
    # Token usage as the server reported it (None when it reports none, e.g. command agents).
    input_tokens: int | None = None
    output_tokens: int | None = None


Generate = Callable[[EndpointConfig, GenerationRequest], ProviderAnswer]
