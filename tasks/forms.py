from __future__ import annotations

from django import forms
from django.conf import settings
from django.urls import reverse_lazy

from repos.models import Repository
from tasks.models import Preference, Project, Task

SCORE_CHOICES = [(n, str(n)) for n in range(1, 6)]


class TaskCreateForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.filter(is_active=True))
    repository = forms.ModelChoiceField(
        queryset=Repository.objects.filter(is_enabled=True, cloned_at__isnull=False),
        help_text="Only repositories that finished cloning are listed.",
        widget=forms.Select(
            attrs={
                "hx-get": reverse_lazy("repos:ref_options"),
                "hx-trigger": "change, load",
                "hx-target": "#ref-options",
                "hx-swap": "outerHTML",
            }
        ),
    )
    ref = forms.CharField(
        max_length=255,
        required=False,
        label="Branch, tag or commit",
        help_text="Leave empty to pin the head of the default branch.",
        widget=forms.TextInput(attrs={"list": "ref-options", "autocomplete": "off"}),
    )
    title = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Task.Kind.choices)
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["prompt"].max_length = settings.MARLIN_PROMPT_MAX_CHARS
        self.fields["prompt"].validators.append(
            forms.fields.validators.MaxLengthValidator(settings.MARLIN_PROMPT_MAX_CHARS)
        )


class JudgementForm(forms.Form):
    """The judgement of one turn: a score per axis per candidate, a preference, a justification."""

    preference = forms.TypedChoiceField(
        choices=Preference.choices, coerce=int, widget=forms.RadioSelect
    )
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), max_length=20_000)
    # Set by "Submit anyway" after the page showed consistency warnings.
    confirm_warnings = forms.BooleanField(required=False, widget=forms.HiddenInput)
    follow_up = forms.CharField(
        required=False,
        label="Follow-up prompt",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Both models answer it, continuing from the candidate you prefer.",
    )

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["justification"].min_length = project.min_justification_chars
        self.fields["justification"].validators.append(
            forms.fields.validators.MinLengthValidator(project.min_justification_chars)
        )
        self.fields["follow_up"].max_length = settings.MARLIN_PROMPT_MAX_CHARS
        self.fields["follow_up"].validators.append(
            forms.fields.validators.MaxLengthValidator(settings.MARLIN_PROMPT_MAX_CHARS)
        )
        for slot in ("A", "B"):
            for axis in project.rubric_axes:
                self.fields[self.score_field(slot, axis["key"])] = forms.TypedChoiceField(
                    label=f"{axis['label']} ({slot})",
                    choices=SCORE_CHOICES,
                    coerce=int,
                    widget=forms.RadioSelect,
                )

    @staticmethod
    def score_field(slot: str, axis: str) -> str:
        return f"score_{slot}_{axis}"

    def rubric_rows(self) -> list[dict]:
        """The rubric laid out for the template: per axis, its point meanings and both fields."""
        return [
            {
                "axis": axis,
                "points": list(enumerate(axis["points"], start=1)),
                "fields": [self[self.score_field(slot, axis["key"])] for slot in ("A", "B")],
            }
            for axis in self.project.rubric_axes
        ]

    def scores(self) -> dict[str, dict[str, int]]:
        return {
            slot: {
                axis: self.cleaned_data[self.score_field(slot, axis)]
                for axis in self.project.axis_keys
            }
            for slot in ("A", "B")
        }
