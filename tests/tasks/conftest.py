"""Fixtures of the tasks tests: two real model clients talking to loopback fake servers."""

from __future__ import annotations

import pytest

from tests.fakes.model_servers import FakeAnthropicServer, FakeOpenAIServer

OPS_TAIL = " def div(a, b):\n     return a / b\n"


def answer_marking(mark: str):
    """A fake model that answers every request with a diff adding `# <mark>-turn<N>`."""

    def answer(body: dict) -> str:
        turn = sum(1 for m in body["messages"] if m["role"] == "user")
        return (
            f"I added the {mark} marker.\n\n```diff\n--- a/calc/ops.py\n+++ b/calc/ops.py\n"
            f"@@ -5,2 +5,3 @@\n{OPS_TAIL}+# {mark}-turn{turn}\n```\n"
        )

    return answer


@pytest.fixture
def fake_models(monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "sk-ant-test")
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-openai-test")
    with (
        FakeAnthropicServer(default=answer_marking("alpha")) as alpha,
        FakeOpenAIServer(default=answer_marking("beta")) as beta,
    ):
        yield alpha, beta
