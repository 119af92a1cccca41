"""Which items fall in a project's share (overlap, gold, audit): stable, not random.

A hash of the item's key decides, so the same turn is always in or out of a given share (a
replayed acceptance opens nothing new), 0 % selects nothing and 100 % everything, and tests
need no seed.
"""

from __future__ import annotations

from hashlib import blake2b


def in_share(*, key: str, percent: int) -> bool:
    """Whether `key` falls in the first `percent` of 100 stable buckets."""
    bucket = int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big") % 100
    return bucket < percent
