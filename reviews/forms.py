from __future__ import annotations

import re

from django import forms

from repos.models import Repository
from reviews.earnings import Period
from reviews.models import Review
from reviews.services import FEEDBACK_MAX_CHARS, NoteInput
from tasks.models import Project, Task

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
