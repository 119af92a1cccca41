"""marlin.threads: a pipeline stage on a second thread keeps order, bounds what it holds,
reports errors where the caller sees them and leaves no thread behind."""

from __future__ import annotations

import threading
import time

import pytest

from marlin.threads import BehindWriter, map_ahead


def _alive(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def test_map_ahead_keeps_the_order_and_runs_fn_on_another_thread():
    caller = threading.get_ident()
    ran_on: set[int] = set()

    def slow_square(n: int) -> int:
        ran_on.add(threading.get_ident())
        time.sleep(0.002 * (n % 3))  # uneven durations must not reorder anything
        return n * n

    assert list(map_ahead(slow_square, range(20))) == [n * n for n in range(20)]
    assert ran_on and caller not in ran_on
    assert _alive("map-ahead") == []


def test_map_ahead_reads_items_on_the_callers_thread_and_only_a_bounded_way_ahead():
    caller = threading.get_ident()
    produced: list[int] = []

    def items():
        for n in range(30):
            assert threading.get_ident() == caller
            produced.append(n)
            yield n

    for ahead in (1, 3):
        produced.clear()
        for taken, result in enumerate(map_ahead(lambda n: n, items(), ahead=ahead), start=1):
            assert result == taken - 1
            # Besides what the caller took: at most `ahead` waiting results.
            assert len(produced) - taken <= ahead
        assert len(produced) == 30


def test_an_error_in_fn_reaches_the_caller_after_the_results_before_it():
    def fails_on_three(n: int) -> int:
        if n == 3:
            raise ValueError("three")
        return n

    got = []
    with pytest.raises(ValueError, match="three"):
        for result in map_ahead(fails_on_three, range(10)):
            got.append(result)
    assert got == [0, 1, 2]
    assert _alive("map-ahead") == []


def test_an_error_in_the_items_reaches_the_caller():
    def items():
        yield 1
        raise ConnectionError("lost")

    with pytest.raises(ConnectionError, match="lost"):
        list(map_ahead(lambda n: n, items()))
    assert _alive("map-ahead") == []


def test_closing_map_ahead_early_runs_nothing_more():
    calls: list[int] = []
    go_on = threading.Event()

    def record(n: int) -> int:
        calls.append(n)
        if n >= 2:
            go_on.wait(timeout=10)  # hold the worker while the caller closes
        return n

    results = map_ahead(record, range(1000), ahead=3)
    assert [next(results), next(results)] == [0, 1]
    # Items 2..4 are queued or running; closing must drop the queued ones.
    threading.Timer(1.0, go_on.set).start()
    results.close()
    assert calls == [0, 1, 2]  # item 2 was running and finished; 3 and 4 never ran
    assert _alive("map-ahead") == []


def test_behind_writer_writes_everything_in_order_off_the_callers_thread():
    caller = threading.get_ident()
    written: list[int] = []
    threads: set[int] = set()

    def sink(n: int) -> None:
        threads.add(threading.get_ident())
        time.sleep(0.001)
        written.append(n)

    with BehindWriter(sink) as writer:
        for n in range(25):
            writer.put(n)
            # One item behind at most: every item before the last put is written by now.
            assert written == list(range(n + 1))[: len(written)] and len(written) >= n
    assert written == list(range(25))
    assert caller not in threads
    assert _alive("behind-writer") == []


def test_a_sink_error_surfaces_at_the_next_put_or_at_close():
    def fails_on_two(n: int) -> None:
        if n == 2:
            raise OSError("disk full")

    writer = BehindWriter(fails_on_two)
    writer.put(1)
    writer.put(2)
    with pytest.raises(OSError, match="disk full"):
        writer.put(3)
    writer.close()

    last = BehindWriter(fails_on_two)
    last.put(2)
    with pytest.raises(OSError, match="disk full"):
        last.close()
    assert _alive("behind-writer") == []


def test_the_callers_error_wins_over_a_sink_error():
    def always_fails(n: int) -> None:
        raise OSError("disk full")

    with pytest.raises(KeyError, match="the caller's"), BehindWriter(always_fails) as writer:
        writer.put(1)
        raise KeyError("the caller's")
    assert _alive("behind-writer") == []
