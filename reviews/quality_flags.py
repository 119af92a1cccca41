"""Effort and bias flags on a submission (issue 18); filled in by helper F."""

from __future__ import annotations


def submission_flags_record(*, submission) -> list:
    return []
