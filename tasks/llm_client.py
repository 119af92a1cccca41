"""The one interface to model providers: a request in, an answer or a ProviderError out.

Each provider lives in tasks/providers/<name>.py behind `generate(endpoint, request)`;
REGISTRY maps the endpoint's provider to it. Nothing else in Marlin imports a model SDK.
"""

from __future__ import annotations

import logging

from tasks.providers.base import (
    EndpointConfig,
    Generate,
    GenerationRequest,
    ProviderAnswer,
    ProviderError,
)

logger = logging.getLogger(__name__)


def load_providers() -> None:
    """Import every provider (and its SDK) now; the worker calls this before forking, so no
    generation pays the SDK import (about 1.5 s) on its process's first job."""
    _registry()
    from tasks.providers import anthropic_api, openai_api

    openai_api.preload()
    anthropic_api.preload()


def _registry() -> dict[str, Generate]:
    from tasks.providers import anthropic_api, command, demo, openai_api

    return {
        "demo": demo.generate,
        "anthropic": anthropic_api.generate,
        "openai": openai_api.generate,
        "command": command.generate,
    }


def generate(*, endpoint: EndpointConfig, request: GenerationRequest) -> ProviderAnswer:
    provider = _registry().get(endpoint.provider)
    if provider is None:
        raise ProviderError(
            "The model is not available right now.",
            detail=f"unknown provider {endpoint.provider!r}",
        )
    try:
        return provider(endpoint, request)
    except ProviderError as exc:
        logger.warning("endpoint %s failed: %s", endpoint.name, exc.detail)
        raise
