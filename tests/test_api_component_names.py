"""No OpenAPI component is named after a nested serializer's class alone.

A view's nested `OutputSerializer`, `InputSerializer`, `FilterSerializer` (or a `Row`) is
named "Output", "InputRequest", "Filter", "Row" by drf-spectacular unless it is given a
component_name: the second such class would silently share or clash with the first, and
clients generate their types from these names.
"""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

GENERIC = re.compile(r"(?:Paginated)?(?:Output|Input|Filter|Row)(?:Request|List)?")


@pytest.fixture(scope="module")
def components() -> set[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return set(schema["components"]["schemas"])


def test_no_component_has_a_generic_name(components):
    generic = sorted(name for name in components if GENERIC.fullmatch(name))
    assert not generic, f"give these a component_name: {generic}"


def test_the_renamed_components_are_there(components):
    assert {"JudgingTaskList", "JudgingTaskRow", "CatalogueUploadRequest"} <= components
