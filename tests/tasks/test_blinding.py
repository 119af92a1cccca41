"""Contractors and reviewers never learn which model produced which candidate."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tasks.blinding import mask_identity
from tasks.models import Candidate
from tests.factories import ModelEndpointFactory, ProjectFactory
from tests.tasks.helpers import create_task, decide, generate_all, submit

SECRET_WORDS = [
    "zebra-endpoint",
    "zebra-model-v9",
    "yak-endpoint",
    "yak-model-2",
    "claude",
    "gpt",
    "openai",
    "anthropic",
]


@pytest.fixture
def named_project(db):
    return ProjectFactory(
        endpoint_a=ModelEndpointFactory(name="zebra-endpoint", model_id="zebra-model-v9"),
        endpoint_b=ModelEndpointFactory(name="yak-endpoint", model_id="yak-model-2"),
    )


@pytest.fixture
def revealing_task(ready_repository, named_project, contractor):
    task = generate_all(
        create_task(contractor=contractor, project=named_project, repository=ready_repository)
    )
    a, b = Candidate.objects.filter(turn__task=task).order_by("slot")
    a.explanation = "As Claude, made by Anthropic, I (zebra-model-v9) fixed it."
    a.save()
    b.explanation = "I am GPT-4o from OpenAI (yak-endpoint). ChatGPT says hi."
    b.save()
    return task


def _assert_blind(html: str) -> None:
    lowered = html.lower()
    leaks = [word for word in SECRET_WORDS if re.search(rf"\b{re.escape(word)}", lowered)]
    assert not leaks, f"model identity leaked: {leaks}"


def test_the_contractors_pages_are_blind(client, revealing_task, contractor):
    client.force_login(contractor)
    for url in (
        reverse("tasks:list"),
        reverse("tasks:detail", args=[revealing_task.pk]),
        reverse("tasks:candidates", args=[revealing_task.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200
        _assert_blind(response.content.decode())
    assert (
        "[model]" in client.get(reverse("tasks:detail", args=[revealing_task.pk])).content.decode()
    )


def test_the_reviewers_pages_are_blind(client, revealing_task, reviewer):
    submit(revealing_task)
    client.force_login(reviewer)
    for url in (reverse("reviews:queue"), reverse("reviews:detail", args=[revealing_task.pk])):
        response = client.get(url)
        assert response.status_code == 200
        _assert_blind(response.content.decode())


def test_a_failure_message_is_blind(client, revealing_task, contractor):
    candidate = Candidate.objects.filter(turn__task=revealing_task).first()
    Candidate.objects.filter(pk=candidate.pk).update(
        status=Candidate.Status.FAILED, error="zebra-endpoint returned 500 from Anthropic"
    )
    client.force_login(contractor)
    _assert_blind(client.get(reverse("tasks:detail", args=[revealing_task.pk])).content.decode())


def test_the_export_keeps_what_the_model_wrote(revealing_task, reviewer, tmp_path):
    import json

    from django.core.management import call_command

    task = submit(revealing_task)
    decide(task, reviewer=reviewer)
    out = tmp_path / "x.jsonl"
    call_command("export_dataset", "-o", str(out))
    record = json.loads(out.read_text())
    explanations = {c["explanation"] for c in record["candidates"].values()}
    assert any("As Claude" in e for e in explanations)
    assert {c["endpoint"] for c in record["candidates"].values()} == {
        "zebra-endpoint",
        "yak-endpoint",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("As Claude 3.5 Sonnet, I think", "As [model], I think"),
        ("I'm ChatGPT, built by OpenAI", "I'm [model], built by [model]"),
        ("Llama 3 and Mistral and Qwen2.5-Coder", "[model] and [model] and [model]"),
        ("use the gpt-4o-mini model", "use the [model] model"),
        ("plain text about code", "plain text about code"),
    ],
)
def test_mask_identity(text, expected):
    assert mask_identity(text) == expected


@pytest.mark.parametrize(
    "disguised",
    [
        "&#99;laude",
        "cl&shy;aude",
        "gpt&#45;4",
        "Open\\AI",
        "**Open**AI",
        "cl\u200baude",
        "&#x43;laude",
    ],
)
def test_markdown_cannot_smuggle_a_model_name_past_the_mask(
    client, revealing_task, contractor, disguised
):
    import html as html_lib

    a = Candidate.objects.filter(turn__task=revealing_task).order_by("slot").first()
    a.explanation = f"Made by {disguised} itself."
    a.save()
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[revealing_task.pk])).content.decode()
    start = page.index('data-slot="A"')
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", page[start : start + 6000]))
    text = text.replace("\u00ad", "").replace("\u200b", "")
    _assert_blind(text)
