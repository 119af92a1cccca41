from __future__ import annotations

from django import template

from tasks.blinding import mask_identity

register = template.Library()


@register.filter(name="blinded")
def blinded(text: str, candidate) -> str:
    """The text with every name of the candidate's model masked (still escaped by the page)."""
    endpoint = candidate.endpoint
    return mask_identity(text, names=[endpoint.name, endpoint.model_id])
