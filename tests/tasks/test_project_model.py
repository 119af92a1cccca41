from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from tasks.models import ProjectEndpoint, default_rubric_axes
from tests.factories import ModelEndpointFactory, ProjectFactory, pool_endpoints


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
    project = ProjectFactory.build(rubric_axes=axes)
    with pytest.raises(ValidationError) as info:
        project.full_clean()
    assert "rubric_axes" in info.value.message_dict


def test_an_endpoint_is_in_a_project_pool_once(db):
    project = ProjectFactory(rubric_axes=default_rubric_axes())
    again = ProjectEndpoint(project=project, endpoint=pool_endpoints(project)[0])
    with pytest.raises(ValidationError, match="Project endpoint with this Project and Endpoint"):
        again.validate_constraints()
    with pytest.raises(IntegrityError, match="one_pool_row_per_endpoint"):
        again.save()


def test_a_pool_weight_is_positive(db):
    row = ProjectEndpoint(project=ProjectFactory(), endpoint=ModelEndpointFactory(), weight=0)
    with pytest.raises(ValidationError, match="greater than or equal to 0.01"):
        row.full_clean()
