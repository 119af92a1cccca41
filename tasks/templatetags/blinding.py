from __future__ import annotations

from django import template

from tasks.blinding import mask_identity

register = template.Library()


@register.filter(name="blinded")
def blinded(text: str, project) -> str:
    """The text with the names of both of the project's models masked (still autoescaped)."""
    names = []
    for endpoint in (project.endpoint_a, project.endpoint_b):
        names += [endpoint.name, endpoint.model_id]
    return mask_identity(text, names=names)
