"""Builders for tasks in a given stage, going through the real services."""

from __future__ import annotations

from tasks import generation_services, services
from tasks.models import Candidate, Task


def create_task(*, contractor, project, repository, prompt: str = "Make div safe.") -> Task:
    return services.task_create(
        contractor=contractor,
        project=project,
        repository=repository,
        ref="",
        title="Guard division",
        kind=Task.Kind.BUG_FIX,
        prompt=prompt,
    )


def generate_all(task: Task) -> Task:
    """Run both generation jobs' service in-process (the worker path is tested end to end)."""
    for candidate in Candidate.objects.filter(turn__task=task):
        generation_services.candidate_generate(candidate_id=candidate.pk)
    task.refresh_from_db()
    return task


def vendor_project(alpha, beta, **fields):
    """A project whose endpoints are real Anthropic and OpenAI clients talking to the fake
    servers `alpha` and `beta` (keys FAKE_ANTHROPIC_KEY / FAKE_OPENAI_KEY must be set)."""
    from tests.factories import ModelEndpointFactory, ProjectFactory

    return ProjectFactory(
        endpoint_a=ModelEndpointFactory(
            provider="anthropic", model_id="alpha-1", base_url=alpha.base_url,
            api_key_env="FAKE_ANTHROPIC_KEY",
        ),
        endpoint_b=ModelEndpointFactory(
            provider="openai", model_id="beta-1", base_url=beta.base_url,
            api_key_env="FAKE_OPENAI_KEY",
        ),
        **fields,
    )  # fmt: skip


def valid_scores(project, a: int = 4, b: int = 2) -> dict:
    return {"A": dict.fromkeys(project.axis_keys, a), "B": dict.fromkeys(project.axis_keys, b)}


def submit(task: Task, *, preference: int = -2) -> Task:
    return services.task_submit(
        task=task,
        by=task.contractor,
        preference=preference,
        scores=valid_scores(task.project),
        justification="A handles the zero case; B crashes.",
    )


def decide(task: Task, *, reviewer, decision: str = "ACCEPT", feedback: str = "", notes=None):
    """Claim the task for `reviewer` and record their decision, as the review page does."""
    from reviews.claim_services import review_claim
    from reviews.services import review_decide

    review_claim(task=task, reviewer=reviewer)
    return review_decide(
        task=task, reviewer=reviewer, decision=decision, feedback=feedback, notes=notes
    )
