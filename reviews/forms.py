from __future__ import annotations

from django import forms

from reviews.models import Review
from reviews.services import FEEDBACK_MAX_CHARS
from tasks.models import Project


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=Review.Decision.choices, widget=forms.RadioSelect)
    feedback = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        max_length=FEEDBACK_MAX_CHARS,
        help_text="Required when bouncing: say what the contractor should change.",
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("decision") == Review.Decision.BOUNCE and not data.get("feedback", "").strip():
            self.add_error("feedback", "Bouncing a task needs feedback for the contractor.")
        return data


class ExportForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.all(), required=False)
    format = forms.ChoiceField(
        choices=[
            ("native", "Native JSONL (everything)"),
            ("trl", "Hugging Face TRL preference (JSONL)"),
            ("openai", "OpenAI preference fine-tuning (JSONL)"),
            ("csv", "CSV summary"),
        ],
        initial="native",
    )
    include_unaccepted = forms.BooleanField(required=False)
