"""Ride out a database restart or failover in a long-running job.

A generation job holds a connection idle for the whole model call; if PostgreSQL restarted
meanwhile, the job's first write after the answer fails on the dead connection. The answer is
paid for, so its write is tried again on a fresh connection for about a minute rather than
thrown away with the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds between tries: 61.5 s in all, longer than a restart, shorter than a job's limits.
RETRY_DELAYS: tuple[float, ...] = (0.5, 1, 2, 4, 8, 16, 30)
# A dead or closing connection (psycopg2 raises either, depending on when it noticed).
DISCONNECTED = (OperationalError, InterfaceError)


def close_broken_connection() -> None:
    """Drop this thread's connection so the next query opens a new one.

    Django reconnects by itself only between requests; a job or a thread has no request.
    """
    # Closing a dead connection can fail too; Django has forgotten it either way.
    with suppress(*DISCONNECTED):
        connection.close()


def retry_on_disconnect(write: Callable[[], T], *, what: str, delays=RETRY_DELAYS) -> T:
    """Run `write`; while the database cannot be reached, wait and run it again.

    `write` must be safe to run again after a failure: each try is its own transaction,
    so a failed one left nothing behind (a commit lost in flight surfaces as the write
    finding its work already done, which the caller handles).
    """
    for delay in (*delays, None):
        try:
            return write()
        except DISCONNECTED:
            if delay is None:
                raise
            logger.warning("database unreachable while %s; trying again in %s s", what, delay)
            close_broken_connection()
            time.sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises
