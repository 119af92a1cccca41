"""/healthz (liveness) and /readyz (database, broker, cache) for the orchestrator.

The outage cases run against a private redis-server (cache and broker), stopped and
started by the test; the shared Redis of the run is never touched.
"""

from __future__ import annotations

import time

import pytest
from django.conf import settings as django_settings
from django.test import Client

from marlin import health, resilient_cache
from tests.redis_server import celery_broker_at, private_redis, redis_caches

PORT = 6393


@pytest.fixture
def private_services(db, settings, tmp_path):
    with private_redis(PORT, tmp_path) as server, celery_broker_at(server.url):
        configured = django_settings.CACHES["default"]
        settings.CACHES = (
            {"default": {**configured, "LOCATION": server.url}}
            if "redis" in configured["BACKEND"].lower()
            else redis_caches(server.url)
        )
        health.forget_broker_state()
        resilient_cache.reset_circuits()
        yield server
    health.forget_broker_state()
    resilient_cache.reset_circuits()


def test_healthz_answers_without_login_and_without_touching_the_database(
    db, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert response.status_code == 200 and response.content == b"ok"


def test_the_older_health_route_still_answers(db):
    assert Client().get("/health/").status_code == 200


def test_readyz_reports_each_dependency_up_with_its_latency(db):
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "broker", "cache"}
    for name, check in body["checks"].items():
        assert check["state"] == "up", (name, check)
        assert isinstance(check["latency_ms"], float) and check["latency_ms"] >= 0


def test_readyz_says_which_dependency_is_down_and_recovers(private_services):
    client = Client()
    assert client.get("/readyz").status_code == 200
    private_services.stop()
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 5  # an orchestrator's probe times out too
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["state"] == "up"
    assert body["checks"]["broker"]["state"] == "down"
    # The cache falls back to memory during the outage; readiness still says Redis is down.
    assert body["checks"]["cache"]["state"] == "down"
    assert body["checks"]["cache"]["error"] == "ConnectionError"
    # A public answer: no address, port or URL of the services it checked.
    text = response.content.decode()
    assert str(PORT) not in text and "redis://" not in text and "127.0.0.1" not in text

    private_services.start()
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert {c["state"] for c in response.json()["checks"].values()} == {"up"}


def test_probes_are_not_redirected_to_https(db, settings):
    # An orchestrator probes the container over plain http; a 301 would hide a 503.
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/tasks/").status_code == 301  # everything else still is
