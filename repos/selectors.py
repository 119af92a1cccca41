from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from repos.models import Repository


def repository_list(*, query: str = "", ready_only: bool = False) -> QuerySet[Repository]:
    """Enabled repositories of the catalogue, with how many tasks already use each."""
    qs = Repository.objects.filter(is_enabled=True).annotate(task_count=Count("tasks"))
    if query:
        qs = qs.filter(Q(full_name__icontains=query) | Q(description__icontains=query))
    if ready_only:
        qs = qs.filter(clone_status=Repository.CloneStatus.READY)
    return qs


def repository_get(*, pk: int) -> Repository:
    return get_object_or_404(Repository, pk=pk, is_enabled=True)
