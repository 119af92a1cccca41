"""What a model is sent: instructions, the task, repository context and the conversation.

The conversation is never cut. Repository context fills what is left of the budget: files
the prompts mention first, then READMEs, then the rest; then the file list, shortened last.
"""

from __future__ import annotations

import hashlib
import re
import time

import orjson
from django.conf import settings

from repos import services as repo_services
from tasks.models import Candidate, Judgement, SentPrompt, Turn
from tasks.providers.base import GenerationRequest

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert software engineer working on a real repository. Make the change the "
    "user asks for as a careful senior engineer would: correct, secure, reliable and "
    "maintainable. Explain what you changed and why, briefly. Then give the complete change "
    "as ONE unified diff against the pinned commit in a ```diff block (paths a/... and b/...). "
    "In follow-up turns, the diff must still be against the pinned commit and include the "
    "earlier change you keep."
)
_PATH_MENTION_RE = re.compile(r"[\w./-]+\.\w+")


def preferred_candidate(turn: Turn, judgement: Judgement | None) -> Candidate | None:
    """The candidate the conversation continues from: the preferred one, or on a tie the
    one with the higher total score (A if still equal)."""
    candidates = {c.slot: c for c in turn.candidates.all()}
    if judgement is None:
        return None
    return candidates.get(continuing_slot(judgement.preference, judgement.scores))


def continuing_slot(preference: int, scores: dict) -> str:
    """The slot the conversation continues from (see preferred_candidate), from plain values."""
    if preference < 0:
        return "A"
    if preference > 0:
        return "B"
    totals = {s: sum(scores.get(s, {}).values()) for s in ("A", "B")}
    return "B" if totals["B"] > totals["A"] else "A"


def _file_listing(paths: list[str], budget: int) -> str:
    """The repository's file list, shortened to `budget` bytes with a count of what is left."""
    lines = ["Files in the repository:"]
    used = len(lines[0]) + 1
    for number, path in enumerate(paths):
        if used + len(path.encode()) + 1 > budget - 40:
            lines.append(f"... and {len(paths) - number} more")
            break
        lines.append(path)
        used += len(path.encode()) + 1
    return "\n".join(lines)


def assistant_message(candidate: Candidate) -> str:
    return assistant_text(candidate.explanation, candidate.diff)


def assistant_text(explanation: str, diff: str) -> str:
    """A candidate's answer as an assistant message: the explanation, then the diff."""
    return f"{explanation}\n\n```diff\n{diff}```"


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
            messages.append({"role": "assistant", "content": assistant_message(chosen)})
            base_diff = chosen.diff
    return messages, base_diff


def focus_files_line(paths: list[str]) -> str:
    """How the models are told which files the contractor named as the ones that matter."""
    return f"Files that matter: {', '.join(paths)}"


def build_request(candidate: Candidate) -> GenerationRequest:
    turn = candidate.turn
    task = turn.task
    repository = task.repository
    messages, base_diff = conversation_for(turn, review_round=task.round)
    mentioned = _PATH_MENTION_RE.findall(
        " ".join(m["content"] for m in messages if m["role"] == "user")
    )
    head = [
        task.project.system_prompt.strip() or DEFAULT_SYSTEM_PROMPT,
        f"Repository: {repository.full_name}, pinned commit {task.commit_sha}.",
    ]
    if task.focus_files:
        head.append(focus_files_line(task.focus_files))
    # The conversation and instructions are never cut; the rest of the budget goes to the
    # file list (at most a quarter) and then to file contents.
    remaining = settings.MARLIN_PROMPT_CONTEXT_BYTES - sum(
        len(text.encode()) for text in [*head, *(m["content"] for m in messages)]
    )
    # Listing and reading share one time budget: a huge tree shortens the context (and the
    # note says so) instead of holding the worker until the job's time limit; a tree that
    # cannot even be listed in time fails with GitTimeout, which says why.
    seconds = settings.MARLIN_REPO_CONTEXT_SECONDS
    started = time.monotonic()
    all_paths = repo_services.repository_paths(
        repository=repository, sha=task.commit_sha, timeout=seconds
    )
    listing = _file_listing(all_paths, max(remaining // 4, 0))
    remaining -= len(listing.encode())
    context = repo_services.repository_context(
        repository=repository,
        sha=task.commit_sha,
        # The files the contractor named come before those the prompts merely mention.
        wanted=[*task.focus_files, *mentioned],
        budget_bytes=max(remaining, 0),
        paths=all_paths,
        budget_seconds=max(seconds - (time.monotonic() - started), 0),
    )
    files = dict(context.files)
    if context.note:
        listing = f"{listing}\n[{context.note}]"
    conversation_bytes = sum(len(m["content"].encode()) for m in messages)

    def system_text() -> str:
        blocks = [f"--- {path} ---\n{text}" for path, text in files.items()]
        return "\n\n".join([*head, listing, *blocks])

    # File headers and separators are not in the reads' budget: drop the least relevant
    # files until the whole prompt fits.
    while (
        files
        and len(system_text().encode()) + conversation_bytes > settings.MARLIN_PROMPT_CONTEXT_BYTES
    ):
        files.popitem()
    return GenerationRequest(
        system=system_text(),
        messages=messages,
        paths=context.paths,
        files=files,
        repo_path=repo_services.repository_cache_path(repository),
        commit_sha=task.commit_sha,
        base_diff=base_diff,
    )


def sent_prompt_keep(request: GenerationRequest) -> SentPrompt:
    """Keep the messages a request sends (once per distinct content) for the exports."""
    messages = request.chat_messages()
    digest = hashlib.sha256(orjson.dumps(messages)).hexdigest()
    # Both candidates of a turn write the same row at once: get_or_create takes the one
    # that won the unique digest.
    prompt, _ = SentPrompt.objects.get_or_create(digest=digest, defaults={"messages": messages})
    return prompt
