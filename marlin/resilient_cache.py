"""The Redis cache, made to survive a Redis outage: pages compute without it, then use it again.

Everything Marlin caches (highlighted files, parsed diffs, catalogue facets, API throttle
counts, the brake on token guessing) can be rebuilt or counted afresh, so Redis being down
must never turn a page into a 500. When a call to Redis fails to connect or times out:

- a circuit opens for `circuit_open_seconds` (5 s): calls skip Redis altogether, so a
  hung Redis costs one request one short timeout per window, not every request its own;
- calls go to a local-memory cache of this process instead, so throttles keep counting
  (per process: a client spread over N workers gets up to N times its rate) and a page
  rendered twice is highlighted once;
- when the window is over the next call tries Redis again; if it answers, the circuit
  closes and every process is back on the shared cache without a restart.

Keys deleted during the outage (a catalogue change forgetting its facets) are deleted from
Redis when it returns, so no value from before the outage outlives its invalidation.
Only connection errors and timeouts open the circuit; any other Redis error (a bad
command, an out-of-memory refusal) is a bug or a misconfiguration and is raised.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError)
# A refused connection fails at once; these bound a Redis that accepts but never answers.
DEFAULT_SOCKET_CONNECT_TIMEOUT = 0.5
DEFAULT_SOCKET_TIMEOUT = 1.0
DEFAULT_CIRCUIT_OPEN_SECONDS = 5.0
DEFAULT_FALLBACK_MAX_ENTRIES = 500
# Deletes remembered for replay; beyond this the oldest are dropped (and logged).
_MAX_MISSED_DELETES = 10_000


class _Circuit:
    """Whether Redis is believed reachable, shared by every thread of the process.

    Django makes one cache object per thread; the circuit, like the fallback's storage,
    must be one per process, or each thread would wait out its own timeout.
    """

    def __init__(self, open_seconds: float) -> None:
        self.open_seconds = open_seconds
        self.lock = threading.Lock()
        self.is_open = False
        self.retry_at = 0.0
        self.missed_deletes: dict[tuple[str, int | None], None] = {}

    def allows_call(self) -> bool:
        with self.lock:
            if not self.is_open:
                return True
            now = time.monotonic()
            if now < self.retry_at:
                return False
            # Half-open: this caller tries Redis; the others stay local meanwhile, so a
            # Redis that still hangs holds up one request, not all of them.
            self.retry_at = now + self.open_seconds
            return True

    def trip(self, exc: Exception) -> None:
        with self.lock:
            was_open = self.is_open
            self.is_open = True
            self.retry_at = time.monotonic() + self.open_seconds
        if not was_open:
            logger.warning(
                "cache: Redis unreachable (%s); using this process's memory for %.0f s "
                "at a time until it answers",
                exc,
                self.open_seconds,
            )

    def close(self) -> list[tuple[str, int | None]] | None:
        """Mark Redis reachable; returns the deletes to replay if it was not, else None."""
        with self.lock:
            if not self.is_open:
                return None
            self.is_open = False
            missed, self.missed_deletes = list(self.missed_deletes), {}
        logger.warning("cache: Redis answers again; back on the shared cache")
        return missed

    def remember_deletes(self, keys: list[tuple[str, int | None]]) -> None:
        with self.lock:
            for key in keys:
                self.missed_deletes[key] = None
            overflow = len(self.missed_deletes) - _MAX_MISSED_DELETES
            for stale in list(self.missed_deletes)[: max(overflow, 0)]:
                del self.missed_deletes[stale]
        if overflow > 0:
            logger.warning(
                "cache: %d deletes made during the outage will not be replayed", overflow
            )


_circuits: dict[str, _Circuit] = {}
_circuits_lock = threading.Lock()


def _circuit_for(location: str, open_seconds: float) -> _Circuit:
    with _circuits_lock:
        if location not in _circuits:
            _circuits[location] = _Circuit(open_seconds)
        return _circuits[location]


def reset_circuits() -> None:
    """Forget every outage seen (tests that start a new server at an old address)."""
    with _circuits_lock:
        _circuits.clear()


class ResilientRedisCache(RedisCache):
    """Django's RedisCache, with a circuit breaker and a per-process fallback (module doc).

    OPTIONS besides redis-py's own: `circuit_open_seconds`, `fallback_max_entries`.
    `socket_connect_timeout` and `socket_timeout` default to short values here.
    """

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = dict(params.get("OPTIONS") or {})
        open_seconds = float(options.pop("circuit_open_seconds", DEFAULT_CIRCUIT_OPEN_SECONDS))
        max_entries = int(options.pop("fallback_max_entries", DEFAULT_FALLBACK_MAX_ENTRIES))
        options.setdefault("socket_connect_timeout", DEFAULT_SOCKET_CONNECT_TIMEOUT)
        options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
        super().__init__(server, {**params, "OPTIONS": options})
        self._circuit = _circuit_for(str(server), open_seconds)
        local_params = {
            key: params[key] for key in ("TIMEOUT", "KEY_PREFIX", "VERSION", "KEY_FUNCTION")
            if key in params
        }  # fmt: skip
        self._local = LocMemCache(
            f"marlin-redis-fallback:{server}",
            {**local_params, "OPTIONS": {"MAX_ENTRIES": max_entries}},
        )

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._circuit.allows_call():
            try:
                result = getattr(super(), name)(*args, **kwargs)
            except UNREACHABLE as exc:
                self._circuit.trip(exc)
            else:
                missed = self._circuit.close()
                if missed is not None:
                    self._back_on_redis(missed)
                return result
        return getattr(self._local, name)(*args, **kwargs)

    def _back_on_redis(self, missed: list[tuple[str, int | None]]) -> None:
        # The local copies are never read again while Redis answers; free them.
        self._local.clear()
        for done, (key, version) in enumerate(missed):
            try:
                super().delete(key, version=version)
            except UNREACHABLE as exc:
                self._circuit.trip(exc)
                self._circuit.remember_deletes(missed[done:])
                return

    def _deleting(self, keys: list[str], version: int | None) -> None:
        # Also when this call reached Redis but another thread's failed meanwhile: a
        # delete replayed once too often costs nothing.
        if self._circuit.is_open:
            self._circuit.remember_deletes([(key, version) for key in keys])

    def ping(self) -> None:
        """Ask Redis itself (never the fallback); raises if it cannot be reached.

        Readiness checks use this; a success also closes the circuit at once.
        """
        try:
            self._cache.get_client(write=True).ping()
        except UNREACHABLE as exc:
            self._circuit.trip(exc)
            raise
        missed = self._circuit.close()
        if missed is not None:
            self._back_on_redis(missed)

    @property
    def is_using_fallback(self) -> bool:
        return self._circuit.is_open

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("add", key, value, timeout, version=version)

    def get(self, key, default=None, version=None):
        return self._call("get", key, default, version=version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set", key, value, timeout, version=version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("touch", key, timeout, version=version)

    def delete(self, key, version=None):
        result = self._call("delete", key, version=version)
        self._deleting([key], version)
        return result

    def get_many(self, keys, version=None):
        return self._call("get_many", keys, version=version)

    def has_key(self, key, version=None):
        return self._call("has_key", key, version=version)

    def incr(self, key, delta=1, version=None):
        return self._call("incr", key, delta, version=version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set_many", data, timeout, version=version)

    def delete_many(self, keys, version=None):
        keys = list(keys)
        result = self._call("delete_many", keys, version=version)
        self._deleting(keys, version)
        return result

    def clear(self) -> bool:
        """Delete this cache's own keys (its KEY_PREFIX), never the whole database.

        Django's RedisCache.clear() is FLUSHDB; the cache's database is also the broker's,
        so that would drop every queued job. Not replayed after an outage, like before.
        """
        self._local.clear()
        if not self._circuit.allows_call():
            return True
        try:
            client = self._cache.get_client(write=True)
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{_glob_escape(self.key_prefix)}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.delete(*batch)
                    batch.clear()
            if batch:
                client.delete(*batch)
        except UNREACHABLE as exc:
            self._circuit.trip(exc)
        return True


def _glob_escape(text: str) -> str:
    """Redis MATCH patterns treat * ? [ ] and backslash as special."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)
