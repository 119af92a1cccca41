from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from repos.models import Repository
from reviews.earning_selectors import Period
from reviews.export_filters import EVIDENCE_FILTERS, ExportFilters
from reviews.models import ExportJob, Review, SubmissionFlag
from reviews.quality_flags import SORT_BY_FLAGS
from reviews.services import FEEDBACK_MAX_CHARS, NoteInput
from tasks.models import ModelEndpoint, Project, Task

# note-<turn id>, note-<turn id>-preference|justification, note-<turn id>-<slot>-<axis>
_NOTE_NAME = re.compile(
    r"note-(?P<turn>\d{1,12})(?:-(?:(?P<slot>[AB])-)?(?P<field>[a-z][a-z0-9_]{0,39}))?"
)


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=Review.Decision.choices, widget=forms.RadioSelect)
    feedback = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        max_length=FEEDBACK_MAX_CHARS,
        label="General feedback",
        help_text="Required when bouncing: say what the contractor should change.",
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("decision") == Review.Decision.BOUNCE and not data.get("feedback", "").strip():
            self.add_error("feedback", "Bouncing a task needs feedback for the contractor.")
        data["notes"] = self._notes()
        return data

    def _notes(self) -> list[NoteInput]:
        """Notes typed next to a turn or a field; the service checks they belong to the task."""
        notes = []
        for name, text in self.data.items():
            if not name.startswith("note-") or not str(text).strip():
                continue
            match = _NOTE_NAME.fullmatch(name)
            if match is None:
                raise forms.ValidationError(f"A note field is malformed: {name[:60]!r}.")
            notes.append(
                NoteInput(
                    turn_id=int(match["turn"]),
                    slot=match["slot"] or "",
                    field=match["field"] or "",
                    text=str(text),
                )
            )
        return notes


class QueueFilterForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.all(), required=False)
    repository = forms.ModelChoiceField(
        queryset=Repository.objects.filter(tasks__status=Task.Status.SUBMITTED).distinct(),
        required=False,
    )
    kind = forms.ChoiceField(choices=[("", "Any kind"), *Task.Kind.choices], required=False)
    flag = forms.ChoiceField(choices=[("", "Any"), *SubmissionFlag.Kind.choices], required=False)
    sort = forms.ChoiceField(
        choices=[("", "Oldest first"), (SORT_BY_FLAGS, "Most flags first")], required=False
    )

    def filters(self) -> dict[str, Any]:
        """selectors.review_queue's keyword arguments (all but the user) from a valid form."""
        data = self.cleaned_data
        return {
            "project_id": getattr(data["project"], "pk", None),
            "repository_id": getattr(data["repository"], "pk", None),
            "kind": data["kind"],
            "flag": data["flag"],
            "sort": data["sort"],
        }


class PeriodForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise forms.ValidationError("The period starts after it ends.")
        if start and end and (end - start).days > 3660:
            raise forms.ValidationError("A period is at most ten years.")
        return data

    def period(self) -> Period:
        default = Period.this_month()
        if not self.is_valid():
            return default
        return Period(
            start=self.cleaned_data.get("start") or default.start,
            end=self.cleaned_data.get("end")
            or max(default.end, self.cleaned_data.get("start") or default.end),
        )


def _format_choices() -> list[tuple[str, str]]:
    choices = [
        ("native", "Native JSONL (everything)"),
        ("trl", "Hugging Face TRL preference (JSONL)"),
        ("openai", "OpenAI preference fine-tuning (JSONL)"),
        ("csv", "CSV summary"),
    ]
    seen: dict[str, str] = {}
    for project in Project.objects.order_by("name"):
        for axis in project.rubric_axes:
            seen.setdefault(axis["key"], axis["label"])
    choices += [(f"criterion:{key}", f"TRL judged on {label} alone") for key, label in seen.items()]
    return choices


def _share_field(what: str, help_text: str) -> forms.FloatField:
    """A threshold between 0 and 1 on a contractor's measured quality."""
    message = f"The minimum {what} is a share between 0 and 1 (e.g. 0.8)."
    return forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        label=f"Minimum {what}",
        help_text=help_text,
        error_messages={"invalid": message, "min_value": message, "max_value": message},
    )


class ExportForm(forms.Form):
    """The export's format and filters; the page, the API and the command share these rules."""

    format = forms.ChoiceField(
        choices=_format_choices,
        initial="native",
        error_messages={
            "invalid_choice": "Unknown format %(value)s: use native, trl, openai, csv or "
            "criterion:<axis> with an axis of a project's rubric."
        },
    )
    project = forms.ModelChoiceField(queryset=Project.objects.all(), required=False)
    include_unaccepted = forms.BooleanField(
        required=False, help_text="By default only accepted tasks are exported."
    )
    submitted_from = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Submitted from"
    )
    submitted_to = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Submitted to"
    )
    repositories = forms.CharField(
        required=False,
        max_length=5000,
        help_text="Full names, comma-separated (owner/name, ...).",
    )
    kinds = forms.MultipleChoiceField(
        choices=Task.Kind.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    endpoints = forms.ModelMultipleChoiceField(
        queryset=ModelEndpoint.objects.order_by("name"),
        required=False,
        help_text="Tasks of projects comparing any of these models.",
    )
    contractor = forms.CharField(required=False, max_length=150, help_text="A username.")
    min_strength = forms.TypedChoiceField(
        choices=[
            (0, "Any, ties included"),
            (1, "At least slightly better (no ties)"),
            (2, "At least better"),
            (3, "Much better only"),
        ],
        coerce=int,
        initial=0,
        required=False,
        empty_value=0,
        label="Minimum preference strength",
    )
    evidence = forms.ChoiceField(
        choices=[
            ("", "Any"),
            ("agrees", "Only where it agrees with the preference"),
            ("disagrees", "Only where it disagrees (judgements to look at)"),
        ],
        required=False,
        label="Evidence (tests fixed and broken)",
        help_text="Either choice leaves out turns where the evidence gives no verdict (none on "
        "a candidate, or the same for both and a clear preference).",
        error_messages={
            "invalid_choice": "Unknown evidence filter %(value)s: use "
            + " or ".join(EVIDENCE_FILTERS)
            + "."
        },
    )
    min_contractor_agreement = _share_field(
        "contractor agreement",
        "0 to 1: keep only tasks of contractors whose preference pointed the same way as the "
        "other rater's on at least this share of their turns judged twice (on the project "
        "chosen, else on all). Contractors with no turn judged twice are left out.",
    )
    min_gold_accuracy = _share_field(
        "gold accuracy",
        "0 to 1: keep only tasks of contractors right on at least this share of their gold "
        "turns (on the project chosen, else on all). Contractors with no gold turn graded are "
        "left out.",
    )
    prompt_style = forms.ChoiceField(
        choices=ExportJob.PromptStyle.choices,
        initial=ExportJob.PromptStyle.MODEL,
        required=False,
        widget=forms.RadioSelect,
        label="Prompt in pairwise formats",
        help_text="The prompt of each trl, openai and criterion record.",
    )

    def clean_prompt_style(self) -> str:
        return self.cleaned_data["prompt_style"] or ExportJob.PromptStyle.MODEL

    def clean_repositories(self) -> list[int]:
        names = [n.strip() for n in self.cleaned_data["repositories"].split(",") if n.strip()]
        found = dict(Repository.objects.filter(full_name__in=names).values_list("full_name", "pk"))
        missing = [n for n in names if n not in found]
        if missing:
            raise forms.ValidationError(f"Unknown repository: {', '.join(missing[:5])}.")
        return sorted(found[n] for n in set(names))

    def clean_contractor(self) -> int | None:
        username = self.cleaned_data["contractor"].strip()
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise forms.ValidationError(f"No user named {username!r}.")
        return user.pk

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("submitted_from"), data.get("submitted_to")
        if start and end and start > end:
            raise forms.ValidationError("The date range starts after it ends.")
        return data

    def filters(self) -> ExportFilters:
        data = self.cleaned_data
        return ExportFilters(
            project_id=data["project"].pk if data.get("project") else None,
            accepted_only=not data.get("include_unaccepted"),
            submitted_from=data.get("submitted_from"),
            submitted_to=data.get("submitted_to"),
            repository_ids=tuple(data.get("repositories") or ()),
            kinds=tuple(sorted(data.get("kinds") or ())),
            endpoint_ids=tuple(sorted(e.pk for e in data.get("endpoints") or ())),
            contractor_id=data.get("contractor"),
            min_strength=data.get("min_strength") or 0,
            evidence=data.get("evidence") or "",
            min_contractor_agreement=data.get("min_contractor_agreement"),
            min_gold_accuracy=data.get("min_gold_accuracy"),
        )


class DashboardForm(forms.Form):
    project = forms.ModelChoiceField(
        queryset=Project.objects.order_by("name"), required=False, empty_label="All projects"
    )
