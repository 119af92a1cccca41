from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.functional import cached_property

from repos.models import Repository

SORTS = {
    "stars": ("-stars", "full_name"),
    "name": ("full_name",),
    "least_used": ("task_count", "-stars", "full_name"),
}


@dataclass(frozen=True)
class CatalogueFilter:
    """What the picker asks for; every field optional."""

    query: str = ""
    language: str = ""
    topic: str = ""
    license: str = ""
    min_stars: int | None = None
    max_stars: int | None = None
    sort: str = "stars"
    ready_only: bool = False


def repository_list(*, filters: CatalogueFilter | None = None) -> QuerySet[Repository]:
    """Enabled repositories matching the picker's search and filters, in the asked order.

    Text search is a case-insensitive substring match on one lower-cased column, which a
    trigram GIN index serves on PostgreSQL.
    """
    f = filters or CatalogueFilter()
    qs = Repository.objects.filter(is_enabled=True)
    if f.query:
        qs = qs.filter(search_text__contains=f.query.lower())
    if f.language:
        qs = qs.filter(language=f.language)
    if f.topic:
        qs = qs.filter(topics_text__contains=f" {f.topic.lower()} ")
    if f.license:
        qs = qs.filter(license=f.license)
    if f.min_stars is not None:
        qs = qs.filter(stars__gte=f.min_stars)
    if f.max_stars is not None:
        qs = qs.filter(stars__lte=f.max_stars)
    if f.ready_only:
        qs = qs.filter(cloned_at__isnull=False)
    return qs.order_by(*SORTS.get(f.sort, SORTS["stars"]))


LANGUAGES_CACHE_KEY = "repos:languages:v1"
COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    """Counts at most COUNT_CAP matches: an exact COUNT(*) over a huge catalogue costs more
    than the page itself, and nobody pages past the first thousands."""

    @property
    def cap(self) -> int:
        return COUNT_CAP

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.cap + 1].count()

    @property
    def is_capped(self) -> bool:
        return self.count > self.cap


def repository_languages() -> list[str]:
    """Languages on offer, for the picker's select; cached until the catalogue changes."""
    languages = cache.get(LANGUAGES_CACHE_KEY)
    if languages is None:
        languages = list(
            Repository.objects.filter(is_enabled=True)
            .exclude(language="")
            .values_list("language", flat=True)
            .distinct()
            .order_by("language")
        )
        cache.set(LANGUAGES_CACHE_KEY, languages, 3600)
    return languages


def repository_languages_forget() -> None:
    cache.delete(LANGUAGES_CACHE_KEY)


def repository_get(*, pk: int) -> Repository:
    return get_object_or_404(Repository, pk=pk, is_enabled=True)
