"""Reviewer audits (issue 18); filled in by helper A."""

from __future__ import annotations


def audit_maybe_open(*, review) -> None:
    return None
