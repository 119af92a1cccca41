"""A private redis-server for fault tests: started, stopped and restarted by the test itself.

The shared Redis (6379) is never stopped: other helpers and the broker of this run use it.
Each server here listens on its own port, keeps nothing on disk, and dies with the test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kombu.pools
import pytest


class PrivateRedis:
    """One redis-server process on `port`; `stop()` and `start()` may be called repeatedly."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.is_listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def is_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextmanager
def private_redis(port: int, workdir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(port, workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def redis_caches(url: str) -> dict:
    """CACHES as base.py sets them when REDIS_URL is set, pointed at `url` instead.

    No OPTIONS: the timeouts and the circuit's length are the backend's own defaults,
    the same ones production runs with.
    """
    return {
        "default": {
            "BACKEND": "marlin.resilient_cache.ResilientRedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "marlin",
        }
    }


@contextmanager
def celery_broker_at(url: str) -> Iterator[None]:
    """Point the web side's Celery app (what `.delay()` publishes through) at `url`.

    The app keeps a pool of broker connections and producers; both are dropped so the next
    send connects to `url`, and dropped again afterwards so later tests use the shared broker.
    """
    from marlin.celery import app

    def drop_pools() -> None:
        # The app's pools are kombu's process-wide ones, registered by broker URL: closing
        # them without unregistering would hand the closed pool to the next send to the
        # shared broker ("Acquire on closed pool").
        kombu.pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    drop_pools()
    app.conf.broker_url = url
    try:
        yield
    finally:
        drop_pools()
        app.conf.broker_url = previous
