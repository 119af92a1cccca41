"""Anthropic's Messages API through the official `anthropic` client."""

from __future__ import annotations

from functools import lru_cache

import anthropic

from tasks.providers import _http_errors as errors
from tasks.providers.base import EndpointConfig, GenerationRequest, ProviderAnswer, ProviderError

DEFAULT_MAX_TOKENS = 8192
DEFAULT_TIMEOUT = 300.0


@lru_cache(maxsize=32)
def _client(api_key: str | None, base_url: str | None, timeout: float) -> anthropic.Anthropic:
    """One client per process and configuration: it keeps its connections (and TLS) warm."""
    # Retries are the job's: it backs off across workers and records each attempt.
    return anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)


def preload() -> None:
    """Build and drop one client: its HTTP transport and TLS defaults are imported lazily on
    the first construction (0.3-0.5 s), which otherwise lands on each pool process's first job."""
    anthropic.Anthropic(api_key="preload", base_url="http://127.0.0.1:9", max_retries=0).close()


def generate(endpoint: EndpointConfig, request: GenerationRequest) -> ProviderAnswer:
    params = endpoint.parameters
    if not endpoint.api_key_env:
        # Without a named key the SDK would fall back to whatever credentials the worker has.
        raise ProviderError(
            "The model is not configured on this server; an admin has been told.",
            detail="anthropic endpoint has no api_key_env",
        )
    client = _client(
        endpoint.api_key() or None,
        endpoint.base_url or None,
        float(params.get("timeout", DEFAULT_TIMEOUT)),
    )
    system, *conversation = request.chat_messages()
    kwargs = {
        "model": endpoint.model_id,
        "max_tokens": int(params.get("max_tokens", DEFAULT_MAX_TOKENS)),
        "system": system["content"],
        "messages": conversation,
    }
    if "temperature" in params:
        # This SDK's create() takes no temperature argument; the API still accepts it.
        kwargs["extra_body"] = {"temperature": float(params["temperature"])}
    try:
        message = client.messages.create(**kwargs)
    except anthropic.APITimeoutError as exc:
        raise errors.timeout_error(f"anthropic timeout: {exc}") from exc
    except anthropic.APIConnectionError as exc:
        raise errors.connection_error(f"anthropic connection: {exc}") from exc
    except anthropic.APIStatusError as exc:
        raise errors.status_error(
            exc.status_code, exc.response.headers, f"anthropic {exc.status_code}: {exc.message}"
        ) from exc
    except (anthropic.APIResponseValidationError, ValueError) as exc:
        # ValueError covers a body that is not JSON at all (json.JSONDecodeError).
        raise errors.malformed_error(f"anthropic malformed response: {exc}") from exc
    text = "".join(
        block.text for block in (message.content or []) if getattr(block, "type", "") == "text"
    )
    if not text.strip():
        raise errors.malformed_error(f"anthropic empty answer (stop_reason={message.stop_reason})")
    usage = getattr(message, "usage", None)
    return ProviderAnswer(
        text=text,
        input_tokens=getattr(usage, "input_tokens", None),
        output_tokens=getattr(usage, "output_tokens", None),
    )
