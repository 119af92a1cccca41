"""Run the same action from several threads at the same moment, each on its own connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.db.models import Model

from marlin.exceptions import ApplicationError


def run_at_once(action: Callable[..., Any], *arguments: tuple) -> list[Any]:
    """Call action(*args) for each args tuple in its own thread, released together.

    Returns each call's result, or the ApplicationError it raised, in completion order.
    """
    return _run_threads(action, arguments, gate=None)


def run_racing(
    action: Callable[..., Any], *arguments: tuple, hold: Model, waiting: int | None = None
) -> list[Any]:
    """Like run_at_once, but proven to race: the callers meet inside their transactions.

    Threads released together may still run one after the other (SQLite's IMMEDIATE
    transactions always do), and then the losing path under test never runs. Here the
    test's own connection locks `hold`'s row FOR UPDATE first. A caller that writes that
    row, or checks a foreign key to it at commit, stops there, holding what it wrote.
    The lock is let go only once `waiting` callers (default: all) wait on a lock at the
    same moment and at least one of them waits for another caller's transaction to end
    (it touched a row that caller wrote): the callers overlap past their reads, and the
    database decides the race. Code that serialised them before their reads (a lock on
    `hold` first) would queue them behind the test's transaction or in the row's queue of
    waiters, never behind each other's transaction, and this fails. PostgreSQL only:
    mark the test `postgresql_only`.
    """
    expected = len(arguments) if waiting is None else waiting

    def gate(start: Callable[[], None]) -> None:
        with transaction.atomic():
            type(hold).objects.select_for_update().get(pk=hold.pk)
            start()
            seen, behind_a_caller = _wait_for_lock_waiters(expected, timeout=15)
        assert seen >= expected and behind_a_caller, (
            f"{seen} of {expected} callers waited on a lock at once, {behind_a_caller} of "
            "them for another caller's transaction: they did not race"
        )

    return _run_threads(action, arguments, gate=gate)


def _wait_for_lock_waiters(
    expected: int, *, timeout: float, behind_a_caller_needed: bool = True
) -> tuple[int, int]:
    """(callers waiting on a lock, those of them waiting for another caller's transaction)
    once enough wait, or as last seen when the time is up."""
    deadline = time.monotonic() + timeout
    seen = behind_a_caller = 0
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            # pg_stat_activity is read once per transaction unless the snapshot is dropped.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*), count(*) FILTER (WHERE wait_event = 'transactionid'"
                "  AND NOT pg_blocking_pids(pid) <@ ARRAY[pg_backend_pid()]) "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            seen, behind_a_caller = cursor.fetchone()
            if seen >= expected and (behind_a_caller or not behind_a_caller_needed):
                break
            time.sleep(0.02)
    return seen, behind_a_caller


def wait_until_waiting_on_locks(count: int, *, timeout: float = 15) -> None:
    """Block the calling thread until `count` other connections wait on a lock: a caller that
    must act second waits here until the first is held up inside its transaction."""
    seen, _ = _wait_for_lock_waiters(count, timeout=timeout, behind_a_caller_needed=False)
    assert seen >= count, f"only {seen} of {count} connections waited on a lock"


def _run_threads(
    action: Callable[..., Any],
    arguments: tuple[tuple, ...],
    *,
    gate: Callable[[Callable[[], None]], None] | None,
) -> list[Any]:
    barrier = threading.Barrier(len(arguments))
    outcomes: list[Any] = []
    crashes: list[BaseException] = []

    def run(args: tuple) -> None:
        barrier.wait()
        try:
            outcomes.append(action(*args))
        except ApplicationError as exc:
            outcomes.append(exc)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            crashes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(args,)) for args in arguments]

    def start() -> None:
        for thread in threads:
            thread.start()

    try:
        if gate is None:
            start()
        else:
            gate(start)
    finally:
        for thread in threads:
            if thread.ident is not None:
                thread.join(timeout=30)
    if crashes:
        raise crashes[0]
    assert len(outcomes) == len(arguments), "a thread did not finish within 30 s"
    return outcomes
