"""Overlapping a pipeline's stages on a second thread, for work that releases the GIL
(database round trips, file writes, hashing) next to work that holds it."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_ahead(fn: Callable[[T], R], items: Iterable[T], *, ahead: int = 1) -> Iterator[R]:
    """fn(item) for each item, in order, each run on one worker thread while the caller's
    thread goes on producing the next items (at most `ahead` results wait to be taken).

    `items` is iterated in the caller's thread, so it may use the caller's database
    connection; fn must not. An exception from fn or from `items` is raised to the caller,
    and closing the iterator early stops the worker without running what was queued.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="map-ahead")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class BehindWriter:
    """Runs sink(item) on a worker thread, one item behind the caller: the caller prepares
    item n + 1 while item n is written. Errors surface at the next put() or at close()."""

    def __init__(self, sink: Callable[[T], None]) -> None:
        self._sink = sink
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="behind-writer")
        self._pending: Future[None] | None = None

    def put(self, item: T) -> None:
        self._wait()
        self._pending = self._pool.submit(self._sink, item)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        """Wait for the last item; raises what the sink raised."""
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> BehindWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        # Already failing: let the last write finish, but keep the first error.
        with contextlib.suppress(Exception):
            self.close()
