"""The direct diff of two candidates' results: A's tree after its change against B's.

Both changes are applied to the task's pinned commit in isolation (a private index and a
private object directory that borrows the shared clone's objects read-only), so the shared
clone is never written to. The comparison is cached per pair of diffs; model names are
masked when it is shown, like in each candidate's own diff.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from django.core.cache import cache
from django.utils.safestring import SafeString

from repos import git_client, highlighting
from repos import services as repo_services
from tasks.blinding import identity_names, mask_names
from tasks.diff_html import DiffPage, Layout, diff_page
from tasks.diffview import CACHE_SECONDS, diff_digest

CACHE_VERSION = 1
# Past this the two results differ too much to read as one diff.
AB_MAX_CHARS = 2_000_000
PATCH_DIFF_MAX_CHARS = 400_000


@dataclass
class AbDiff:
    view: DiffPage | None
    # Why the two results could not be compared as trees ("" when they were).
    problem: str = ""
    # Then, the two changes' texts compared line by line instead (escaped HTML).
    patches_html: SafeString | None = None


def turn_ab_diff(
    *, turn, candidates: list, ignore_whitespace: bool = False, layout: Layout = "unified"
) -> AbDiff:
    """A vs B of a turn whose two candidates succeeded: old side A's result, new side B's.

    `candidates` are the turn's candidates as the viewer may see them (slot order A, B).
    """
    by_slot = {c.slot: c for c in candidates}
    a, b = by_slot.get("A"), by_slot.get("B")
    if a is None or b is None or any(c.status != c.Status.SUCCEEDED for c in (a, b)):
        return AbDiff(view=None, problem="Both candidates must be ready to compare them.")
    names = [*identity_names(a), *identity_names(b)]
    result = _compare_cached(turn.task, a, b)
    if result["problem"]:
        patches = "".join(
            difflib.unified_diff(
                mask_names(a.diff, names=names).splitlines(keepends=True),
                mask_names(b.diff, names=names).splitlines(keepends=True),
                "A's change", "B's change",
            )
        )  # fmt: skip
        if len(patches) > PATCH_DIFF_MAX_CHARS:
            patches = patches[:PATCH_DIFF_MAX_CHARS] + "\n… (cut: the changes differ too much)\n"
        return AbDiff(
            view=None,
            problem=mask_names(result["problem"], names=names),
            patches_html=highlighting.highlight_diff(patches) if patches else None,
        )
    # Every file at once: this diff is itself loaded only when the A vs B mode is shown.
    view = diff_page(
        candidate_id=turn.pk,
        diff=mask_names(result["diff"], names=names),
        layout=layout,
        ignore_whitespace=ignore_whitespace,
        anchor_prefix=f"t{int(turn.pk)}ab",
        expandable=False,  # the old side is A's result, not the pinned commit
        eager_all=True,
    )
    return AbDiff(view=view)


def _compare_cached(task, a, b) -> dict[str, str]:
    key = f"abdiff:v{CACHE_VERSION}:{task.commit_sha}:{diff_digest(a.diff)}:{diff_digest(b.diff)}"
    found = cache.get(key)
    if isinstance(found, dict):
        return found
    try:
        for slot, candidate in (("A", a), ("B", b)):
            if candidate.diff.strip() and candidate.applies_cleanly is False:
                raise git_client.PatchDoesNotApply(
                    slot, candidate.apply_error or "git apply refused it"
                )
        diff = git_client.diff_of_patched_trees(
            repo_services.repository_cache_path(task.repository),
            task.commit_sha,
            a.diff,
            b.diff,
        )
        result = {"diff": diff, "problem": ""}
    except git_client.GitError as exc:
        result = {"diff": "", "problem": exc.message}
    if len(result["diff"]) > AB_MAX_CHARS:
        result = {"diff": "", "problem": "The two results differ in too many lines to show."}
    cache.set(key, result, CACHE_SECONDS)
    return result
