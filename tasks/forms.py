from __future__ import annotations

import re

from django import forms
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse_lazy

from repos.models import Repository
from tasks import evidence, selectors
from tasks.models import Preference, Project, Task

SCORE_CHOICES = [(n, str(n)) for n in range(1, 6)]


class PathListField(forms.Field):
    """Paths typed one per line on the page, or a JSON list of strings from the API. Only the
    shape is checked here: the task service holds the rules (tasks/focus_files.py)."""

    widget = forms.Textarea

    def to_python(self, value) -> list[str]:
        if value in (None, ""):
            return []
        if isinstance(value, str):
            return value.splitlines()
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        raise forms.ValidationError("Give the files as a list of paths.", code="invalid")

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value


ACCEPTANCE_ROWS = 3
_ROW_KEY = re.compile(r"(?P<index>\d{1,3})-(?P<part>path|content)")


class AcceptanceTestsWidget(forms.Widget):
    """Rows of path + content on the page (`<name>-<n>-path`, `<name>-<n>-content`); the
    API sends a JSON list of {path, content} under `<name>` itself."""

    def value_from_datadict(self, data, files, name):
        if name in data:
            return data[name] if isinstance(data, dict) else data.get(name)
        rows: dict[int, dict[str, str]] = {}
        for key in data:
            if key.startswith(f"{name}-") and (match := _ROW_KEY.fullmatch(key[len(name) + 1 :])):
                # Browsers post textareas with CRLF line ends; test files want LF.
                text = data.get(key, "").replace("\r\n", "\n")
                rows.setdefault(int(match["index"]), {})[match["part"]] = text
        # Rows left empty are the form's spare rows, not tests; every other row is checked,
        # so more rows than allowed are refused rather than dropped.
        return [
            {"path": row.get("path", ""), "content": row.get("content", "")}
            for _, row in sorted(rows.items())
            if row.get("path", "").strip() or row.get("content", "").strip()
        ]

    def value_omitted_from_data(self, data, files, name) -> bool:
        return name not in data and not any(key.startswith(f"{name}-") for key in data)

    def render(self, name, value, attrs=None, renderer=None) -> str:
        rows = [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []
        rows += [{}] * max(ACCEPTANCE_ROWS - len(rows), 0)
        return render_to_string("tasks/_acceptance_tests_input.html", {"name": name, "rows": rows})


class AcceptanceTestsField(forms.Field):
    """The contractor's acceptance tests, checked by tasks.evidence.acceptance_tests_clean."""

    widget = AcceptanceTestsWidget

    def to_python(self, value) -> list[dict[str, str]]:
        return evidence.acceptance_tests_clean(value)


class TaskCreateForm(forms.Form):
    project = forms.ModelChoiceField(
        queryset=selectors.project_list_active(),
        # The project's guidelines are shown beside the form; they follow the choice.
        widget=forms.Select(
            attrs={
                "hx-get": reverse_lazy("tasks:project_guidelines"),
                "hx-trigger": "change",
                "hx-target": "#project-guidelines",
                "hx-swap": "outerHTML",
            }
        ),
    )
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
    focus_files = PathListField(
        required=False,
        label="Files that matter",
        help_text="Optional: one repository path per line, e.g. calc/ops.py. The models are "
        "told to look at them first.",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocomplete": "off"}),
    )
    acceptance_tests = AcceptanceTestsField(
        required=False,
        label="Acceptance tests — hidden from the models",
        help_text="Optional: test files (a path in the repository and its content) written into "
        "each candidate's tree and the pinned commit's before the checks run. The models never "
        "see them; you and the reviewer see how each candidate does on them.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["prompt"].max_length = settings.MARLIN_PROMPT_MAX_CHARS
        self.fields["prompt"].validators.append(
            forms.fields.validators.MaxLengthValidator(settings.MARLIN_PROMPT_MAX_CHARS)
        )
        if not self.is_bound and not self.initial.get("project"):
            # One open project leaves nothing to choose: start with it chosen.
            only = list(self.fields["project"].queryset[:2])
            if len(only) == 1:
                self.initial["project"] = only[0].pk

    def chosen_project(self) -> Project | None:
        """The project whose guidelines go beside the form: the one posted, else the initial."""
        field = self.fields["project"]
        value = self["project"].value()
        if not value:
            return None
        if isinstance(value, Project):
            return value
        try:
            return field.queryset.get(pk=value)
        except (Project.DoesNotExist, ValueError, TypeError):
            return None


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

    def __init__(
        self,
        *args,
        project: Project,
        form_id: str = "",
        identical: bool = False,
        **kwargs,
    ) -> None:
        """`form_id`: the <form> the fields belong to when they are rendered outside it (an
        earlier turn's fields, prefixed "turn<N>-", submitted with the latest turn's).
        `identical`: both candidates made the same change, so only "About the same" is offered.
        """
        super().__init__(*args, **kwargs)
        self.project = project
        self.identical = identical
        if identical:
            self.fields["preference"].choices = [
                (Preference.ABOUT_THE_SAME.value, Preference.ABOUT_THE_SAME.label)
            ]
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
        if form_id:
            for field in self.fields.values():
                field.widget.attrs["form"] = form_id

    @staticmethod
    def score_field(slot: str, axis: str) -> str:
        return f"score_{slot}_{axis}"

    @classmethod
    def initial_from(cls, *, judgement, draft) -> dict:
        """What the form starts from: the draft if it is newer than the judgement (typing
        survives a reload), else the judgement already given (a revision starts from it)."""
        if draft is not None and (judgement is None or draft.updated_at > judgement.updated_at):
            return dict(draft.data)
        if judgement is None:
            return {}
        initial = {"preference": judgement.preference, "justification": judgement.justification}
        for slot, axes in judgement.scores.items():
            for axis, value in axes.items():
                initial[cls.score_field(slot, axis)] = value
        return initial

    def is_posted(self) -> bool:
        """Whether the request carries any of this form's fields (an earlier turn's form is
        only part of a submit when its fields were on the page)."""
        return self.data is not None and any(
            self.add_prefix(name) in self.data for name in self.fields
        )

    def verdict(self) -> dict:
        """The cleaned judgement as the services take it."""
        return {
            "preference": self.cleaned_data["preference"],
            "scores": self.scores(),
            "justification": self.cleaned_data["justification"],
        }

    def rubric_rows(self) -> list[dict]:
        """The rubric laid out for the template: per axis, its point meanings and both fields."""
        return [
            {
                "axis": axis,
                "points": list(enumerate(axis["points"], start=1)),
                "fields": [self[self.score_field(slot, axis["key"])] for slot in ("A", "B")],
                # Each score radio beside the meaning of its point, for the compact panel.
                "slots": [
                    {
                        "slot": slot,
                        "field": self[self.score_field(slot, axis["key"])],
                        "choices": list(
                            zip(
                                self[self.score_field(slot, axis["key"])],
                                axis["points"],
                                strict=True,
                            )
                        ),
                    }
                    for slot in ("A", "B")
                ],
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
