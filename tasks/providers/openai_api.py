"""Chat Completions through the official `openai` client: OpenAI, vLLM, Ollama, llama.cpp..."""

from __future__ import annotations

from functools import lru_cache

import openai

from tasks.providers import _http_errors as errors
from tasks.providers.base import EndpointConfig, GenerationRequest, ProviderAnswer

DEFAULT_TIMEOUT = 300.0


@lru_cache(maxsize=32)
def _client(api_key: str, base_url: str | None, timeout: float) -> openai.OpenAI:
    """One client per process and configuration: it keeps its connections (and TLS) warm."""
    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)


def preload() -> None:
    """Build and drop one client: its HTTP transport and TLS defaults are imported lazily on
    the first construction (0.3-0.5 s), which otherwise lands on each pool process's first job."""
    openai.OpenAI(api_key="preload", base_url="http://127.0.0.1:9", max_retries=0).close()


def generate(endpoint: EndpointConfig, request: GenerationRequest) -> ProviderAnswer:
    params = endpoint.parameters
    client = _client(
        # Local OpenAI-compatible servers often need no key, but the client insists on one.
        endpoint.api_key() or "not-needed",
        endpoint.base_url or None,
        float(params.get("timeout", DEFAULT_TIMEOUT)),
    )
    kwargs: dict = {
        "model": endpoint.model_id,
        "messages": request.chat_messages(),
    }
    if "temperature" in params:
        kwargs["temperature"] = float(params["temperature"])
    if "max_tokens" in params:
        kwargs["max_tokens"] = int(params["max_tokens"])
    try:
        completion = client.chat.completions.create(**kwargs)
    except openai.APITimeoutError as exc:
        raise errors.timeout_error(f"openai timeout: {exc}") from exc
    except openai.APIConnectionError as exc:
        raise errors.connection_error(f"openai connection: {exc}") from exc
    except openai.APIStatusError as exc:
        raise errors.status_error(
            exc.status_code, exc.response.headers, f"openai {exc.status_code}: {exc.message}"
        ) from exc
    except (openai.APIResponseValidationError, ValueError) as exc:
        # ValueError covers a body that is not JSON at all (json.JSONDecodeError).
        raise errors.malformed_error(f"openai malformed response: {exc}") from exc
    choices = getattr(completion, "choices", None) or []
    text = (choices[0].message.content or "") if choices and choices[0].message else ""
    if not text.strip():
        raise errors.malformed_error("openai empty answer")
    usage = getattr(completion, "usage", None)
    return ProviderAnswer(
        text=text,
        input_tokens=getattr(usage, "prompt_tokens", None),
        output_tokens=getattr(usage, "completion_tokens", None),
    )
