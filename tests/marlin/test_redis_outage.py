"""A Redis outage degrades Marlin instead of breaking it (issue 14, item 1).

Each test starts its own redis-server on a private port and points the cache and the web
side's Celery app at it, then stops it: the shared Redis of the run is never touched.
With it stopped, pages compute without the cache, API throttles count in the process,
jobs that cannot be sent wait QUEUED and the person is told "jobs are delayed"; once
it is started again the shared cache and the broker are used again without a restart.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from marlin import health, resilient_cache
from repos.selectors import LANGUAGES_CACHE_KEY, repository_languages
from tasks import generation_services
from tasks.models import Candidate, Task
from tests.api_clients import api_client_for
from tests.conftest import wait_for
from tests.redis_server import celery_broker_at, private_redis, redis_caches
from tests.tasks.helpers import create_task, generate_all, valid_scores

PORT = 6391
HUNG_PORT = 6392


def _caches_at(url: str) -> dict:
    """The configured Redis cache backend, moved to `url` (what base.py sets up for REDIS_URL)."""
    configured = django_settings.CACHES["default"]
    if "redis" in configured["BACKEND"].lower():
        return {"default": {**configured, "LOCATION": url}}
    return redis_caches(url)


def _forget_outages() -> None:
    """Each test starts with Redis believed up: an earlier test's outage at this address
    (same port) must not leave this one's cache on its fallback."""
    health.forget_broker_state()
    resilient_cache.reset_circuits()


@pytest.fixture
def outage(settings, tmp_path):
    """A private Redis serving as cache and broker; the test stops and starts it at will."""
    with private_redis(PORT, tmp_path) as server, celery_broker_at(server.url):
        settings.CACHES = _caches_at(server.url)
        _forget_outages()
        try:
            yield server
        finally:
            _forget_outages()
    _forget_outages()


@pytest.fixture
def judged_task(ready_repository, project, contractor):
    """A task whose candidates finished (diffs to parse and highlight), made while Redis is up."""
    return generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )


def _raw(server) -> redis.Redis:
    """Redis itself, bypassing Django: proves where a value really went."""
    return redis.Redis.from_url(server.url, socket_timeout=2)


def _task_form(project, repository) -> dict:
    return {
        "project": project.pk,
        "repository": repository.pk,
        "ref": "",
        "title": "Guard division",
        "kind": "bug_fix",
        "prompt": "calc.ops.div raises on zero; return None instead.",
    }


def test_pages_answer_while_redis_is_down(
    outage, client, judged_task, ready_repository, contractor
):
    client.force_login(contractor)
    outage.stop()
    workspace = client.get(reverse("tasks:detail", args=[judged_task.pk]))
    assert workspace.status_code == 200
    # The diff view was parsed and highlighted without the cache: the change is on the page.
    assert "alpha" in workspace.content.decode() or "div" in workspace.content.decode()
    catalogue = client.get(reverse("repos:list"))
    assert catalogue.status_code == 200 and "demo/calc" in catalogue.content.decode()
    browse = client.get(
        reverse("repos:browse", args=[ready_repository.pk, judged_task.commit_sha, "calc/ops.py"])
    )
    assert browse.status_code == 200 and "div" in browse.content.decode()


def test_the_workspace_says_jobs_are_delayed_while_the_broker_is_down(
    outage, client, ready_repository, project, contractor, django_capture_on_commit_callbacks
):
    client.force_login(contractor)
    outage.stop()
    with django_capture_on_commit_callbacks(execute=True) as sent:
        response = client.post(reverse("tasks:create"), _task_form(project, ready_repository))
    assert response.status_code == 302, response.content
    assert len(sent) == 2  # both candidates' sends ran, and failed, without a 500
    task = Task.objects.get()
    # The rows wait QUEUED, dated back so the reaper's first sweep re-sends them.
    stale = timezone.now() - timedelta(seconds=django_settings.MARLIN_QUEUED_STALE_SECONDS)
    candidates = Candidate.objects.filter(turn__task=task)
    assert {c.status for c in candidates} == {Candidate.Status.QUEUED}
    assert all(c.updated_at < stale for c in candidates)
    page = client.get(response["Location"]).content.decode()
    assert 'id="jobs-delayed"' in page and "Jobs are delayed:" in page

    outage.start()
    health.forget_broker_state()  # the few seconds the state is believed, skipped
    page = client.get(response["Location"]).content.decode()
    assert "Jobs are delayed" not in page
    # Back up, the reaper sends the waiting candidates to the broker that just returned.
    assert generation_services.generation_reap_stale()["requeued"] == 2
    queued = _raw(outage).llen(django_settings.CELERY_TASK_DEFAULT_QUEUE)
    assert queued == 2


def test_api_task_create_and_follow_up_answer_and_say_jobs_are_delayed(
    outage, judged_task, ready_repository, project, contractor
):
    client = api_client_for(contractor)
    created = client.post(
        reverse("api-tasks"), _task_form(project, ready_repository), format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["jobs_delayed"] is False  # the field tells the truth both ways

    outage.stop()
    health.forget_broker_state()  # the 2 s an "up" answer is believed, skipped
    created = client.post(
        reverse("api-tasks"), _task_form(project, ready_repository), format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["jobs_delayed"] is True
    judgement = {
        "preference": -2,
        "scores": valid_scores(project),
        "justification": "A guards the zero case; B does not.",
        "prompt": "Also add a test.",
    }
    follow_up = client.post(
        reverse("api-task-follow-up", args=[judged_task.pk]), judgement, format="json"
    )
    assert follow_up.status_code == 201, follow_up.content
    assert follow_up.json()["number"] == 2 and follow_up.json()["jobs_delayed"] is True


def test_api_throttle_still_counts_in_the_process_while_redis_is_down(
    outage, settings, ready_repository, project, contractor
):
    settings.MARLIN_API_MODEL_CALLS_RATE = "1/hour"
    client = api_client_for(contractor)
    outage.stop()
    form = _task_form(project, ready_repository)
    assert client.post(reverse("api-tasks"), form, format="json").status_code == 201
    # Failing open would start (and bill) a second pair of model calls.
    second = client.post(reverse("api-tasks"), form, format="json")
    assert second.status_code == 429, second.content
    assert Task.objects.count() == 1


def test_the_cache_is_shared_again_soon_after_redis_returns(outage):
    cache.set("before", "kept", 60)
    outage.stop()
    cache.set("during", "local", 60)
    assert cache.get("during") == "local"  # the process's own memory meanwhile
    outage.start()  # a fresh, empty Redis: nothing kept on disk

    def written_to_redis() -> bool:
        cache.set("after", "shared", 60)
        return _raw(outage).get(cache.make_key("after")) is not None

    started = time.monotonic()
    wait_for(written_to_redis, timeout=15, interval=0.2, message="the cache to use Redis again")
    assert time.monotonic() - started < 8  # one circuit window (5 s) and change
    assert cache.get("after") == "shared"
    # Read from Redis, not from the outage's local copy (which Redis never had).
    assert cache.get("during") is None


def test_a_delete_made_during_the_outage_reaches_redis_when_it_returns(outage, db):
    # Facets cached before the outage must not outlive a catalogue change made during it.
    repository_languages()
    key = cache.make_key(LANGUAGES_CACHE_KEY)
    _raw(outage).save()  # so the restarted Redis comes back holding the old facets
    outage.stop()
    cache.delete(LANGUAGES_CACHE_KEY)  # reaches only this process's memory
    outage.start()
    assert _raw(outage).exists(key)  # the stale value is back with Redis
    wait_for(
        lambda: cache.get("probe") is None and not _raw(outage).exists(key),
        timeout=15,
        interval=0.2,
        message="the delete missed during the outage to be replayed",
    )


@pytest.fixture
def hung_redis(settings):
    """A port that accepts connections and never answers: a hung Redis, not a refused one."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", HUNG_PORT))
    listener.listen(128)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    settings.CACHES = _caches_at(f"redis://127.0.0.1:{HUNG_PORT}/0")
    yield
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_hung_redis_holds_one_call_briefly_and_the_next_not_at_all(hung_redis):
    started = time.monotonic()
    assert cache.get("anything", "default") == "default"
    first = time.monotonic() - started
    started = time.monotonic()
    cache.set("k", "v", 60)
    assert cache.get("k") == "v"
    rest = time.monotonic() - started
    assert first < 2.5, f"the first call waited {first:.1f}s on a hung Redis"
    assert rest < 0.1, f"later calls waited {rest:.2f}s: the circuit did not open"
