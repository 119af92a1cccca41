from __future__ import annotations

from django import template

from tasks.blinding import mask_identity

register = template.Library()


@register.filter(name="blinded")
def blinded(text: str, candidate) -> str:
    """The text with model names masked: the candidate's own endpoint (which answered, even if
    the project changed since) and both of its project's (a model may name its rival).
    The result is still autoescaped by the page."""
    project = candidate.turn.task.project
    endpoints = {candidate.endpoint, project.endpoint_a, project.endpoint_b}
    names = [n for e in endpoints for n in (e.name, e.model_id)]
    return mask_identity(text, names=names)
