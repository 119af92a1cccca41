from __future__ import annotations

from django import forms

from repos.catalogue_imports import SUFFIXES, max_import_bytes, too_large_message
from repos.git_client import UnsafeRepositoryUrl, validate_clone_url
from repos.selectors import SORTS, CatalogueFilter


class RepositoryImportForm(forms.Form):
    file = forms.FileField(
        help_text="GitHub API repository objects as a JSON array or JSONL, or a CSV with a "
        "full_name column. It is imported in the background; this page then shows its progress."
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > max_import_bytes():
            raise forms.ValidationError(too_large_message(upload.name, upload.size))
        if not upload.name.lower().endswith(SUFFIXES):
            raise forms.ValidationError("Upload a .json, .jsonl, .ndjson or .csv file.")
        return upload


class RepositoryAddForm(forms.Form):
    """One repository by its clone URL, e.g. on an internal git server; the service decides."""

    clone_url = forms.CharField(
        max_length=300,
        label="Clone URL",
        help_text="https://HOST/OWNER/NAME.git on a host listed in MARLIN_GIT_ALLOWED_BASES, "
        "without a user name or password.",
    )
    full_name = forms.CharField(
        max_length=140, required=False, label="Name", help_text="Empty: OWNER/NAME of the URL."
    )
    default_branch = forms.CharField(max_length=255, required=False, help_text="Empty: main.")
    html_url = forms.CharField(
        max_length=300,
        required=False,
        label="Web page",
        help_text="Empty: the clone URL without .git.",
    )
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea)
    language = forms.CharField(max_length=64, required=False)
    license = forms.CharField(max_length=64, required=False, help_text="An SPDX id, e.g. MIT.")
    topics = forms.CharField(
        max_length=1000, required=False, help_text="Separated by spaces or commas."
    )

    def __init__(self, *args, allowed_bases: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.allowed_bases = allowed_bases
        self.fields["clone_url"].help_text += f" Allowed now: {', '.join(allowed_bases)}."

    def clean_clone_url(self) -> str:
        url = self.cleaned_data["clone_url"].strip()
        try:
            validate_clone_url(url, allowed_bases=self.allowed_bases)
        except UnsafeRepositoryUrl as exc:
            raise forms.ValidationError(exc.message) from exc
        return url


class CatalogueFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    language = forms.CharField(required=False, max_length=64)
    topic = forms.CharField(required=False, max_length=50)
    license = forms.CharField(required=False, max_length=64)
    min_stars = forms.IntegerField(required=False, min_value=0, label="Stars from")
    max_stars = forms.IntegerField(required=False, min_value=0, label="to")
    sort = forms.ChoiceField(
        required=False,
        choices=[("stars", "Most stars"), ("name", "Name"), ("least_used", "Least used")],
    )

    def clean(self) -> dict:
        data = super().clean()
        low, high = data.get("min_stars"), data.get("max_stars")
        if low is not None and high is not None and low > high:
            self.add_error("max_stars", "The upper bound is below the lower one.")
        return data

    def to_filter(self) -> CatalogueFilter:
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        sort = data.get("sort") or "stars"
        return CatalogueFilter(
            query=(data.get("q") or "").strip(),
            language=(data.get("language") or "").strip(),
            topic=(data.get("topic") or "").strip(),
            license=(data.get("license") or "").strip(),
            min_stars=data.get("min_stars"),
            max_stars=data.get("max_stars"),
            sort=sort if sort in SORTS else "stars",
        )
