"""What a model is sent: instructions, the task, repository context and the conversation.

The conversation is never cut. Repository context fills what is left of the budget: files
the prompts mention first, then READMEs, then the rest; then the file list, shortened last.
"""

from __future__ import annotations

import re

from django.conf import settings

from repos import services as repo_services
from tasks.llm_client import GenerationRequest
from tasks.models import Candidate, Judgement, Turn

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert software engineer working on a real repository. Make the change the "
    "user asks for as a careful senior engineer would: correct, secure, reliable and "
    "maintainable. Explain what you changed and why, briefly. Then give the complete change "
    "as ONE unified diff against the pinned commit in a ```diff block (paths a/... and b/...). "
    "In follow-up turns, the diff must still be against the pinned commit and include the "
    "earlier change you keep."
)
_PATH_MENTION_RE = re.compile(r"[\w./-]+\.\w+")
_MAX_LISTED_PATHS = 2000


def preferred_candidate(turn: Turn, judgement: Judgement | None) -> Candidate | None:
    """The candidate the conversation continues from: the preferred one, or on a tie the
    one with the higher total score (A if still equal)."""
    candidates = {c.slot: c for c in turn.candidates.all()}
    if judgement is None:
        return None
    slot = judgement.preferred_slot
    if slot is None:
        totals = {s: sum(judgement.scores.get(s, {}).values()) for s in ("A", "B")}
        slot = "B" if totals["B"] > totals["A"] else "A"
    return candidates.get(slot)


def _assistant_message(candidate: Candidate) -> str:
    return f"{candidate.explanation}\n\n```diff\n{candidate.diff}```"


def conversation_for(turn: Turn, *, review_round: int) -> tuple[list[dict[str, str]], str]:
    """The messages up to and including `turn`, and the change the conversation has reached."""
    task = turn.task
    earlier = list(
        task.turns.filter(number__lt=turn.number)
        .order_by("number")
        .prefetch_related("candidates", "judgements")
    )
    messages: list[dict[str, str]] = []
    base_diff = ""
    for number, previous in enumerate([*earlier, turn], start=1):
        content = previous.prompt
        if number == 1:
            content = f"Task ({task.get_kind_display()}): {task.title}\n\n{previous.prompt}"
        messages.append({"role": "user", "content": content})
        if previous is turn:
            break
        judgement = next(
            (j for j in sorted(previous.judgements.all(), key=lambda j: -j.round)
             if j.round <= review_round),
            None,
        )  # fmt: skip
        chosen = preferred_candidate(previous, judgement)
        if chosen is not None:
            messages.append({"role": "assistant", "content": _assistant_message(chosen)})
            base_diff = chosen.diff
    return messages, base_diff


def build_request(candidate: Candidate) -> GenerationRequest:
    turn = candidate.turn
    task = turn.task
    repository = task.repository
    messages, base_diff = conversation_for(turn, review_round=task.round)
    mentioned = _PATH_MENTION_RE.findall(
        " ".join(m["content"] for m in messages if m["role"] == "user")
    )
    budget = settings.MARLIN_PROMPT_CONTEXT_BYTES - sum(
        len(m["content"].encode()) for m in messages
    )
    context = repo_services.repository_context(
        repository=repository, sha=task.commit_sha, wanted=mentioned, budget_bytes=max(budget, 0)
    )
    listed = context.paths[:_MAX_LISTED_PATHS]
    more = len(context.paths) - len(listed)
    sections = [
        task.project.system_prompt.strip() or DEFAULT_SYSTEM_PROMPT,
        f"Repository: {repository.full_name}, pinned commit {task.commit_sha}.",
        "Files in the repository:\n"
        + "\n".join(listed)
        + (f"\n... and {more} more" if more else ""),
    ]
    for path, text in context.files.items():
        sections.append(f"--- {path} ---\n{text}")
    return GenerationRequest(
        system="\n\n".join(sections),
        messages=messages,
        paths=context.paths,
        files=context.files,
        repo_path=repo_services.repository_cache_path(repository),
        commit_sha=task.commit_sha,
        base_diff=base_diff,
    )
