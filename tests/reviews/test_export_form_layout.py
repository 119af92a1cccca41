"""The export and period forms lay their fields out in the styled grid: every field sits in a
labelled `.field` cell of a `.form-grid` form, and the stylesheet makes that a grid."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from reviews.forms import ExportForm, PeriodForm

VOID = {"input", "br", "img", "meta", "link", "hr", "col", "source", "wbr"}


class _Fields(HTMLParser):
    """Each named control of the form with `form_id`, with the classes of the elements around
    it (nearest first), and the ids that a <label for=...> names."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.stack: list[tuple[str, dict]] = []
        self.controls: dict[str, list[tuple[str, str, str]]] = {}
        self.labelled: set[str] = set()
        self.form_classes = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form" and attributes.get("id") == self.form_id:
            self.form_classes = attributes.get("class", "")
        inside = any(t == "form" and a.get("id") == self.form_id for t, a in self.stack)
        if inside and tag == "label" and attributes.get("for"):
            self.labelled.add(attributes["for"])
        name = attributes.get("name")
        if inside and tag in ("input", "select", "textarea") and name != "csrfmiddlewaretoken":
            around = [(t, a.get("class", ""), a.get("id", "")) for t, a in reversed(self.stack)]
            self.controls.setdefault(name, []).append((attributes.get("id", ""), around))
        if tag not in VOID:
            self.stack.append((tag, attributes))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                return


def _parse(html: str, form_id: str) -> _Fields:
    parser = _Fields(form_id)
    parser.feed(html)
    return parser


def _assert_laid_out(parser: _Fields, names: list[str]) -> None:
    assert "form-grid" in parser.form_classes.split()
    assert sorted(parser.controls) == sorted(names)
    for name, controls in parser.controls.items():
        for control_id, around in controls:
            cell = next((c for c in around if "field" in c[1].split()), None)
            assert cell is not None, f"{name} is not inside a .field cell"
            assert cell[2] == f"field-{name}"
            # Named by its own <label for>, or (a group of choices) by its fieldset's legend.
            assert control_id in parser.labelled or cell[0] == "fieldset", name


def test_the_export_form_is_a_grid_of_labelled_fields(client, admin_user):
    client.force_login(admin_user)
    html = client.get(reverse("reviews:export")).content.decode()
    parser = _parse(html, "export-form")
    _assert_laid_out(parser, list(ExportForm.base_fields))
    # Groups of choices are fieldsets with a legend, so a screen reader names each group.
    assert re.search(r'<fieldset class="field field-choices" id="field-kinds"><legend>', html)
    # Help texts are tied to their field.
    assert 'aria-describedby="id_repositories_helptext"' in html
    assert 'id="id_repositories_helptext"' in html


@pytest.mark.parametrize("page", ["reviews:payouts", "reviews:metrics"])
def test_the_period_form_is_a_grid_of_labelled_fields(client, admin_user, page):
    client.force_login(admin_user)
    html = client.get(reverse(page)).content.decode()
    _assert_laid_out(_parse(html, "period"), list(PeriodForm.base_fields))


def test_the_stylesheet_makes_the_form_a_grid():
    css = Path(finders.find("css/base.css")).read_text(encoding="utf-8")
    rule = re.search(r"\.form-grid\s*\{([^}]*)\}", css)
    assert rule and "display:grid" in rule.group(1).replace(" ", "")
