"""The OpenAI-compatible provider, through llm_client.generate and the real `openai` client.

The client talks HTTP to a fake Chat Completions API on the loopback
(tests/fakes/model_servers.py): what is checked is the request that really went over the
wire and the way each kind of failure becomes a ProviderError.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tasks.llm_client import generate
from tasks.providers.base import EndpointConfig, GenerationRequest, ProviderError
from tests.fakes.model_servers import (
    FakeOpenAIServer,
    delay,
    empty,
    fake_token_count,
    malformed,
    ok,
    status,
)

KEY_ENV = "MARLIN_MODEL_KEY_TEST_VENDOR"
KEY = "sk-test-0123456789"
MODEL_ID = "gpt-test-1"
ENDPOINT_NAME = "Vendorbot Large"
VENDOR_WORDS = ("anthropic", "openai", "claude", "gpt")

REQUEST = GenerationRequest(
    system="You are a careful engineer. Answer with a unified diff.",
    messages=[
        {"role": "user", "content": "Make div safe."},
        {"role": "assistant", "content": "Which behaviour do you want for zero?"},
        {"role": "user", "content": "Return None."},
    ],
)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The client reads OPENAI_* variables (base URL, organisation, project, key): none of
    # the worker's may steer these tests.
    for name in list(os.environ):
        if name.startswith("OPENAI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(default=ok("Guarded the division.")) as fake:
        yield fake


def endpoint(server: FakeOpenAIServer, *, api_key_env: str = KEY_ENV, **parameters: object):
    return EndpointConfig(
        provider="openai",
        name=ENDPOINT_NAME,
        model_id=MODEL_ID,
        parameters=parameters,
        base_url=server.base_url,
        api_key_env=api_key_env,
    )


def failure(server: FakeOpenAIServer, **parameters: object) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        generate(endpoint=endpoint(server, **parameters), request=REQUEST)
    return caught.value


def assert_neutral(error: ProviderError) -> None:
    """What contractors see names neither the provider, the model nor the endpoint."""
    shown = error.message.lower()
    assert shown.strip()
    for word in (*VENDOR_WORDS, MODEL_ID, ENDPOINT_NAME.lower()):
        assert word not in shown, f"{word!r} leaked into {error.message!r}"


def test_success_returns_the_text_and_sends_the_conversation(server):
    answer = generate(endpoint=endpoint(server, max_tokens=1234, temperature=0.25), request=REQUEST)

    assert answer.text == "Guarded the division."
    assert answer.diff is None
    assert len(server.requests) == 1
    sent = server.last_request
    # The usage the server reported is kept for the export.
    assert answer.input_tokens == fake_token_count(sent.body["messages"]) > 1
    assert answer.output_tokens == fake_token_count(answer.text)
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.body["model"] == MODEL_ID
    # The system prompt travels as the first message, then the conversation as it was.
    assert sent.body["messages"] == [
        {"role": "system", "content": REQUEST.system},
        *REQUEST.messages,
    ]
    assert sent.body["max_tokens"] == 1234
    assert sent.body["temperature"] == 0.25
    assert sent.header("authorization") == f"Bearer {KEY}"
    assert sent.header("content-type") == "application/json"


def test_optional_parameters_are_left_out_when_absent(server):
    generate(endpoint=endpoint(server), request=REQUEST)

    body = server.last_request.body
    assert "max_tokens" not in body
    assert "temperature" not in body


def test_a_local_server_needs_no_key_variable(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)

    answer = generate(endpoint=endpoint(server, api_key_env=""), request=REQUEST)

    assert answer.text == "Guarded the division."
    assert server.last_request.header("authorization") == "Bearer not-needed"


def test_the_answer_can_depend_on_the_request(server):
    server.set_default(lambda body: f"You said: {body['messages'][-1]['content']}")

    answer = generate(endpoint=endpoint(server), request=REQUEST)

    assert answer.text == "You said: Return None."


def test_rate_limit_is_transient_with_the_servers_retry_after(server):
    server.enqueue(status(429, retry_after=2, message="Rate limit reached for gpt-test-1"))

    error = failure(server)

    assert error.transient is True
    assert error.retry_after == 2.0
    assert "429" in error.detail
    assert_neutral(error)
    assert len(server.requests) == 1  # no retry inside the client: retries are the job's


@pytest.mark.parametrize("code", [500, 503])
def test_server_errors_are_transient(server, code):
    server.enqueue(status(code, message="The server had an error processing your request."))

    error = failure(server)

    assert error.transient is True
    assert error.retry_after is None
    assert str(code) in error.detail
    assert_neutral(error)
    assert len(server.requests) == 1


def test_a_slow_answer_times_out_as_transient(server):
    server.enqueue(delay(2, then=ok("too late")))

    started = time.monotonic()
    error = failure(server, timeout=0.5)
    elapsed = time.monotonic() - started

    assert error.transient is True
    assert elapsed < 1.8, f"the client waited {elapsed:.1f}s: the timeout was not applied"
    assert_neutral(error)


def test_a_body_that_is_not_json_is_transient(server):
    server.enqueue(malformed())

    error = failure(server)

    assert error.transient is True
    assert_neutral(error)


def test_an_empty_answer_is_transient(server):
    server.enqueue(empty())

    error = failure(server)

    assert error.transient is True
    assert_neutral(error)


def test_whitespace_only_content_counts_as_empty(server):
    server.enqueue(ok(" \n "))

    error = failure(server)

    assert error.transient is True


@pytest.mark.parametrize("code", [400, 401, 403, 404])
def test_client_errors_are_not_transient(server, code):
    server.enqueue(status(code, message="The model `gpt-test-1` does not exist"))

    error = failure(server)

    assert error.transient is False
    assert str(code) in error.detail
    assert_neutral(error)


def test_an_unreachable_server_is_transient(server):
    config = endpoint(server)
    server.stop()  # nothing listens on that port any more

    with pytest.raises(ProviderError) as caught:
        generate(endpoint=config, request=REQUEST)

    assert caught.value.transient is True
    assert_neutral(caught.value)


def test_a_missing_key_is_a_configuration_error_that_hides_the_variable(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)

    error = failure(server)

    assert error.transient is False
    assert KEY_ENV not in error.message
    assert KEY_ENV in error.detail  # admins still learn which variable to set
    assert_neutral(error)
    assert server.requests == []


def test_the_fake_refuses_a_request_without_a_bearer_token(server):
    request = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps({"model": "m", "messages": []}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    assert caught.value.code == 401
    assert json.loads(caught.value.read())["error"]["code"] == "invalid_api_key"
