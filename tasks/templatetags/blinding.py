from __future__ import annotations

from django import template

from tasks.blinding import CandidateTexts, candidate_texts

register = template.Library()


@register.simple_tag(name="candidate_texts")
def candidate_texts_tag(candidate) -> CandidateTexts:
    """``{% candidate_texts candidate as texts %}``: the candidate's texts with model names
    masked (tasks.blinding.candidate_texts, the same object the API serialises), for the
    template to print. The only tag here: the pages that show candidates are rendered from
    several views, and this is where they all get the masked texts without masking anything
    themselves."""
    return candidate_texts(candidate)
