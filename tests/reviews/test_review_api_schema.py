"""The review API's serializers are nested in their views; the schema keeps its names.

A nested OutputSerializer is named "Output" by drf-spectacular unless its component_name is
set: these pin the names clients generate code from.
"""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from reviews.forms import QueueFilterForm

# method, path, status (or "body": the request's), component
OPERATIONS = """
    get  /api/reviews/queue/              200   PaginatedQueueTaskList
    get  /api/reviews/tasks/{id}/         200   ReviewTask
    post /api/reviews/tasks/{id}/claim/   201   Claim
    post /api/reviews/tasks/{id}/decide/  201   Review
    post /api/reviews/tasks/{id}/decide/  body  DecisionRequest
    get  /api/earnings/                   200   Earnings
    get  /api/payouts/                    200   Payouts
    get  /api/reviewer-metrics/           200   ReviewerMetrics
    get  /api/notifications/              200   PaginatedNotificationList
    get  /api/exports/                    200   PaginatedExportJobList
    post /api/exports/                    202   ExportJob
    post /api/exports/                    body  ExportRequestRequest
    get  /api/exports/{id}/               200   ExportJob
    get  /api/dashboard/                  200   Dashboard
"""

# component, list field, component of its items
NESTED = """
    DecisionRequest  notes          NoteRequest
    Earnings         tasks          EarningsTask
    Payouts          contractors    PayoutContractor
    Payouts          reviewers      PayoutReviewer
    ReviewerMetrics  reviewers      ReviewerMetric
    Dashboard        gold_accuracy  GoldAccuracy
"""


def _rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.strip().splitlines()]


def _name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.mark.parametrize(("method", "path", "status", "component"), _rows(OPERATIONS))
def test_each_operation_keeps_its_component_names(schema, method, path, status, component):
    operation = schema["paths"][path][method]
    part = operation["requestBody"] if status == "body" else operation["responses"][status]
    assert _name(part["content"]["application/json"]["schema"]["$ref"]) == component


@pytest.mark.parametrize(("component", "field", "nested"), _rows(NESTED))
def test_nested_rows_keep_their_component_names(schema, component, field, nested):
    items = schema["components"]["schemas"][component]["properties"][field]["items"]
    assert _name(items["$ref"]) == nested


def test_the_query_serializers_document_their_parameters(schema):
    def query(path: str) -> set[str]:
        parameters = schema["paths"][path]["get"].get("parameters", [])
        return {p["name"] for p in parameters if p["in"] == "query"}

    assert query("/api/dashboard/") == {"project"}
    assert query("/api/payouts/") == query("/api/reviewer-metrics/") == {"start", "end"}
    # Every filter the queue page offers, beside the paginator's own.
    assert query("/api/reviews/queue/") == {"page", "project", "repository", "kind", "flag", "sort"}


def test_the_queue_documents_the_values_its_form_accepts(schema):
    """The schema's choices are the ones QueueFilterForm takes: a client that keeps to the
    schema is never refused, and every refused value is outside it."""
    parameters = {
        p["name"]: p["schema"] for p in schema["paths"]["/api/reviews/queue/"]["get"]["parameters"]
    }
    form = QueueFilterForm()
    for name in ("kind", "flag", "sort"):
        accepted = {value for value, _ in form.fields[name].choices if value}
        assert set(parameters[name]["enum"]) == accepted, name
    assert parameters["project"]["type"] == parameters["repository"]["type"] == "integer"
