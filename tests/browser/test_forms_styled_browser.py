"""The catalogue search and the export form are styled like the rest of the product: every
text box, number box and select has the product's border and padding (not the browser's
bare widget), sits in a labelled field, and the fields are laid out in rows, not a stack of
unlabelled boxes."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from marlin import roles
from tests.factories import UserFactory

# The product's inputs: 1px border of --line (#d8dee6), 4px radius, .4rem padding.
STYLE_OF_CONTROLS = """(form) => Array.from(form.querySelectorAll(
    'input[type=search], input[type=number], input[type=text], input:not([type]), select'))
  .map((el) => {
    const s = getComputedStyle(el);
    const label = el.labels && el.labels.length ? el.labels[0].textContent.trim() : "";
    return [el.name, s.borderTopLeftRadius, s.paddingLeft, s.borderTopColor, label];
  })"""


def _assert_styled(page: Page, form_selector: str) -> None:
    form = page.locator(form_selector)
    expect(form).to_be_visible()
    controls = form.evaluate(STYLE_OF_CONTROLS)
    assert len(controls) >= 3, controls
    for name, radius, padding, colour, label in controls:
        assert radius == "4px", (name, radius)
        assert float(padding.removesuffix("px")) >= 5, (name, padding)
        assert colour == "rgb(216, 222, 230)", (name, colour)
        assert label, f"{name} has no label"
    # Laid out side by side on a wide screen: at least two fields share a row.
    tops = form.locator(".field").evaluate_all(
        "els => els.map((e) => Math.round(e.getBoundingClientRect().top))"
    )
    assert len(tops) > len(set(tops)), tops


@pytest.mark.parametrize("where", ["catalogue", "export"])
def test_the_catalogue_search_and_the_export_form_are_styled(log_in, db, where):
    page = log_in(UserFactory(username="ann", role=roles.ADMIN))
    page.set_viewport_size({"width": 1280, "height": 900})
    if where == "catalogue":
        page.goto("/repos/")
        _assert_styled(page, "form#catalogue-filters")
    else:
        page.goto("/reviews/export/")
        _assert_styled(page, "form#export-form")
