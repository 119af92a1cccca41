"""The input of a line comment, shared by the page's endpoint and the API."""

from __future__ import annotations

from django import forms

from reviews.comment_services import PATH_MAX_CHARS, TEXT_MAX_CHARS
from reviews.models import LineComment


class LineCommentForm(forms.Form):
    path = forms.CharField(max_length=PATH_MAX_CHARS, strip=False)
    side = forms.ChoiceField(choices=LineComment.Side.choices)
    line = forms.IntegerField(min_value=1, max_value=2_147_483_647)
    end_line = forms.IntegerField(min_value=1, max_value=2_147_483_647, required=False)
    # The service strips and bounds the text; the form only keeps a flood from reaching it.
    text = forms.CharField(max_length=TEXT_MAX_CHARS * 2, strip=False)

    def comment_input(self) -> dict:
        data = self.cleaned_data
        return {key: data[key] for key in ("path", "side", "line", "end_line", "text")}
