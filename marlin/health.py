"""Is each service Marlin depends on reachable? For /readyz and for "jobs are delayed".

Each check is bounded by a short timeout, so a hung service makes a check slow by about a
second, never a request hang. The answers name the service and its state only: never a
URL, a host or a password (the probe endpoints are public).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from kombu.exceptions import ChannelError
from kombu.exceptions import OperationalError as BrokerOperationalError

from marlin.celery import app as celery_app

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 1.0
# How long the broker's state is believed without asking again (per process): "down" for
# longer, so requests during an outage do not each wait on a connection attempt.
BROKER_UP_SECONDS = 2.0
BROKER_DOWN_SECONDS = 5.0
# What a send raises when the broker cannot be reached (kombu wraps the transport's errors).
BROKER_ERRORS = (BrokerOperationalError,)


@dataclass(frozen=True)
class Check:
    name: str
    is_up: bool
    latency_ms: float
    # The exception's class only: its message may carry a host or a URL.
    error: str = ""

    def as_json(self) -> dict:
        data = {"state": "up" if self.is_up else "down", "latency_ms": round(self.latency_ms, 1)}
        if self.error:
            data["error"] = self.error
        return data


def _timed(name: str, probe) -> Check:
    started = time.monotonic()
    try:
        probe()
    except Exception as exc:  # any failure means "down"; the log keeps the detail
        # No traceback: an orchestrator asks every few seconds for as long as it lasts.
        logger.warning("readiness: %s is down: %s", name, exc)
        return Check(name, False, (time.monotonic() - started) * 1000, type(exc).__name__)
    return Check(name, True, (time.monotonic() - started) * 1000)


def database_check() -> Check:
    def probe() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    return _timed("database", probe)


def broker_check() -> Check:
    """Connect to the broker as `.delay()` would, with short timeouts, and record the state."""

    def probe() -> None:
        with celery_app.connection_for_write(
            connect_timeout=PROBE_TIMEOUT_SECONDS,
            transport_options={
                "socket_connect_timeout": PROBE_TIMEOUT_SECONDS,
                "socket_timeout": PROBE_TIMEOUT_SECONDS,
                "max_retries": 0,
            },
        ) as conn:
            conn.ensure_connection(max_retries=0, timeout=2 * PROBE_TIMEOUT_SECONDS)

    check = _timed("broker", probe)
    _broker_state.record(check.is_up)
    return check


def cache_check() -> Check:
    """Ask the cache's server itself: a Redis cache answering from its fallback is down."""

    def probe() -> None:
        ping = getattr(cache, "ping", None)
        if ping is not None:
            ping()
            return
        # Other backends (the embedded file cache): a write read back.
        cache.set("marlin:readyz", "ok", 10)
        if cache.get("marlin:readyz") != "ok":
            raise RuntimeError("the cache did not keep a value")

    return _timed("cache", probe)


def readiness() -> list[Check]:
    return [database_check(), broker_check(), cache_check()]


class _BrokerState:
    """The broker's last known state in this process, and when it was learnt."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.is_up = True
        self.known_at = float("-inf")

    def record(self, is_up: bool) -> None:
        with self.lock:
            self.is_up, self.known_at = is_up, time.monotonic()

    def forget(self) -> None:
        with self.lock:
            self.is_up, self.known_at = True, float("-inf")

    def fresh(self) -> bool | None:
        with self.lock:
            believed = BROKER_UP_SECONDS if self.is_up else BROKER_DOWN_SECONDS
            if time.monotonic() - self.known_at < believed:
                return self.is_up
            return None


_broker_state = _BrokerState()


def broker_is_reachable() -> bool:
    """Whether jobs can be queued now: the last answer within a few seconds, else a probe."""
    known = _broker_state.fresh()
    if known is not None:
        return known
    return broker_check().is_up


def jobs_delayed(*, waiting: bool) -> bool:
    """Whether to tell someone whose jobs are `waiting` that they are delayed: the broker is down."""
    return waiting and not broker_is_reachable()


def job_send(send: Callable[[], object]) -> bool:
    """Send a job message unless the broker is known to be down; False if it was not sent.

    While the broker was seen down within the last few seconds nothing is tried, so a burst
    of requests during an outage does not each wait on a connection timeout. The caller's
    row stays QUEUED and a reaper sends it again (marlin/reaping.py).
    """
    if _broker_state.fresh() is False:
        return False
    try:
        send()
    except BROKER_ERRORS:
        logger.warning("broker unreachable: job not sent, it will be re-sent", exc_info=True)
        _broker_state.record(False)
        return False
    return True


def queued_job_count(queue: str) -> int | None:
    """Messages waiting in the broker's `queue` (not those a worker has taken), or None when
    the broker cannot be asked."""
    try:
        with celery_app.connection_for_write(connect_timeout=PROBE_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=0, timeout=2 * PROBE_TIMEOUT_SECONDS)
            try:
                return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:
                # Redis keeps no empty list: a queue with nothing in it does not exist.
                return 0
    except BROKER_ERRORS + (OSError,):
        return None


def forget_broker_state() -> None:
    """Ask the broker again at the next question (tests that move or restore the broker)."""
    _broker_state.forget()
