from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tasks.models import default_rubric_axes
from tests.factories import ModelEndpointFactory, ProjectFactory


def test_the_default_project_is_valid(db):
    ProjectFactory().full_clean()


@pytest.mark.parametrize(
    "axes",
    [
        [],
        "correctness",
        [{"label": "Correctness"}],
        [{"key": "Correct ness", "label": "C", "points": ["a"] * 5}],
        [{"key": "c", "label": "C", "points": ["a"] * 4}],
        [{"key": "c", "label": "", "points": ["a"] * 5}],
        [
            {"key": "c", "label": "C", "points": ["a"] * 5},
            {"key": "c", "label": "D", "points": ["b"] * 5},
        ],
    ],
)
def test_a_rubric_pages_cannot_render_is_refused(db, axes):
    project = ProjectFactory.build(
        endpoint_a=ModelEndpointFactory(), endpoint_b=ModelEndpointFactory(), rubric_axes=axes
    )
    with pytest.raises(ValidationError) as info:
        project.full_clean()
    assert "rubric_axes" in info.value.message_dict


def test_a_project_compares_two_different_endpoints(db):
    endpoint = ModelEndpointFactory()
    project = ProjectFactory.build(
        endpoint_a=endpoint, endpoint_b=endpoint, rubric_axes=default_rubric_axes()
    )
    with pytest.raises(ValidationError) as info:
        project.full_clean()
    assert "endpoint_b" in info.value.message_dict
