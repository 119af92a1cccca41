from __future__ import annotations

from django import template

from repos import git_client, services

register = template.Library()


@register.simple_tag
def commit_summary(task) -> git_client.CommitInfo | None:
    """The subject and date of the commit a task is pinned to, or None (show the bare sha).

    Cached per commit by the service, so a page pays for git once per commit, not per view.
    """
    if not task.commit_sha:
        return None
    return services.repository_commit_summary(repository=task.repository, sha=task.commit_sha)
