"""Run the same action from several threads at the same moment, each on its own connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

from marlin.exceptions import ApplicationError


def run_at_once(action: Callable[..., Any], *arguments: tuple) -> list[Any]:
    """Call action(*args) for each args tuple in its own thread, released together.

    Returns each call's result, or the ApplicationError it raised, in completion order.
    """
    barrier = threading.Barrier(len(arguments))
    outcomes: list[Any] = []

    def run(args: tuple) -> None:
        barrier.wait()
        try:
            outcomes.append(action(*args))
        except ApplicationError as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(args,)) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == len(arguments), "a thread did not finish within 30 s"
    return outcomes
