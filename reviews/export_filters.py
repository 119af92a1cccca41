"""Which judged turns an export contains: one set of filters for the page, API and command."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from marlin.exceptions import ApplicationError
from reviews import quality_export
from tasks.models import Project, Task

EXPORT_FORMATS = ("native", "trl", "openai", "csv")
# Keep only turns whose evidence (tests fixed and broken) points the way of the preference,
# or only those where it points the other way: the judgements a trainer should look at.
EVIDENCE_FILTERS = ("agrees", "disagrees")


def check_format(fmt: str, *, axes: set[str] | None = None) -> str:
    """One of EXPORT_FORMATS or criterion:<axis>; a clear error otherwise."""
    if fmt in EXPORT_FORMATS:
        return fmt
    if fmt.startswith("criterion:") and len(fmt) > len("criterion:"):
        axis = fmt.split(":", 1)[1]
        if axes is not None and axis not in axes:
            raise ApplicationError(
                f"No rubric axis {axis!r}; the axes are: {', '.join(sorted(axes))}."
            )
        return fmt
    raise ApplicationError(
        f"Unknown format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)} or criterion:<axis>."
    )


@dataclass(frozen=True)
class ExportFilters:
    """Filters on the task of each judged turn, plus a minimum preference strength per turn.

    The date range is on the day the task was (last) submitted, inclusive, in the site's
    time zone. Stored as JSON on an export job, so every field is a plain value.
    """

    project_id: int | None = None
    accepted_only: bool = True
    submitted_from: date | None = None
    submitted_to: date | None = None
    repository_ids: tuple[int, ...] = ()
    kinds: tuple[str, ...] = ()
    endpoint_ids: tuple[int, ...] = ()
    contractor_id: int | None = None
    # 0..3: |preference| at least this (1 leaves out ties, 3 keeps only "much better").
    min_strength: int = 0
    # "" (every turn), or one of EVIDENCE_FILTERS.
    evidence: str = ""
    # 0..1 or None: keep only tasks of contractors whose preference direction matched the
    # other rater's on at least this share of their agreement pairs, or whose gold judging
    # tasks were right at least this often. Measured on the project filtered on (every
    # project without one); a contractor with nothing measured is left out.
    min_contractor_agreement: float | None = None
    min_gold_accuracy: float | None = None

    def __post_init__(self) -> None:
        for name, what in _SHARES.items():
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and 0 <= value <= 1):
                raise ApplicationError(
                    f"The minimum {what} is a share between 0 and 1 (e.g. 0.8), not {value!r}."
                )
        if not 0 <= self.min_strength <= 3:
            raise ApplicationError("The minimum preference strength is 0, 1, 2 or 3.")
        if self.evidence and self.evidence not in EVIDENCE_FILTERS:
            raise ApplicationError(
                f"Unknown evidence filter {self.evidence!r}: use {' or '.join(EVIDENCE_FILTERS)}."
            )
        if self.submitted_from and self.submitted_to and self.submitted_from > self.submitted_to:
            raise ApplicationError("The date range starts after it ends.")
        unknown = set(self.kinds) - set(Task.Kind.values)
        if unknown:
            raise ApplicationError(f"Unknown task kind: {', '.join(sorted(unknown))}.")

    def tasks(self) -> QuerySet[Task]:
        """The tasks whose judged turns are exported, in a stable order (by id)."""
        tasks = Task.objects.all()
        if self.project_id is not None:
            tasks = tasks.filter(project_id=self.project_id)
        if self.accepted_only:
            tasks = tasks.filter(status=Task.Status.ACCEPTED)
        zone = timezone.get_current_timezone()
        if self.submitted_from:
            tasks = tasks.filter(
                submitted_at__gte=datetime.combine(self.submitted_from, time.min, tzinfo=zone)
            )
        if self.submitted_to:
            end = datetime.combine(self.submitted_to + timedelta(days=1), time.min, tzinfo=zone)
            tasks = tasks.filter(submitted_at__lt=end)
        if self.repository_ids:
            tasks = tasks.filter(repository_id__in=self.repository_ids)
        if self.kinds:
            tasks = tasks.filter(kind__in=self.kinds)
        if self.endpoint_ids:
            tasks = tasks.filter(
                Q(first_endpoint_id__in=self.endpoint_ids)
                | Q(second_endpoint_id__in=self.endpoint_ids)
            )
        if self.contractor_id is not None:
            tasks = tasks.filter(contractor_id=self.contractor_id)
        return self._by_quality(tasks).order_by("pk")

    def _by_quality(self, tasks: QuerySet[Task]) -> QuerySet[Task]:
        if self.min_contractor_agreement is None and self.min_gold_accuracy is None:
            return tasks
        project = (
            Project.objects.filter(pk=self.project_id).first()
            if self.project_id is not None
            else None
        )
        if self.min_contractor_agreement is not None:
            tasks = tasks.filter(
                contractor_id__in=quality_export.contractors_meeting_agreement(
                    threshold=self.min_contractor_agreement, project=project
                )
            )
        if self.min_gold_accuracy is not None:
            tasks = tasks.filter(
                contractor_id__in=quality_export.contractors_meeting_gold(
                    threshold=self.min_gold_accuracy, project=project
                )
            )
        return tasks

    def keeps(self, preference: int) -> bool:
        return abs(preference) >= self.min_strength

    def keeps_evidence(self, agrees: bool | None) -> bool:
        """Whether a turn whose evidence agrees (True), disagrees (False) or cannot tell
        (None) is kept: with a filter, a turn without a verdict is never kept."""
        if not self.evidence:
            return True
        return agrees is (self.evidence == "agrees")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("submitted_from", "submitted_to"):
            data[key] = data[key].isoformat() if data[key] else None
        for key in ("repository_ids", "kinds", "endpoint_ids"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportFilters:
        def day(value: str | None) -> date | None:
            return date.fromisoformat(value) if value else None

        return cls(
            project_id=data.get("project_id"),
            accepted_only=bool(data.get("accepted_only", True)),
            submitted_from=day(data.get("submitted_from")),
            submitted_to=day(data.get("submitted_to")),
            repository_ids=tuple(data.get("repository_ids") or ()),
            kinds=tuple(data.get("kinds") or ()),
            endpoint_ids=tuple(data.get("endpoint_ids") or ()),
            contractor_id=data.get("contractor_id"),
            min_strength=int(data.get("min_strength") or 0),
            evidence=data.get("evidence") or "",
            min_contractor_agreement=_share(data.get("min_contractor_agreement")),
            min_gold_accuracy=_share(data.get("min_gold_accuracy")),
        )


_SHARES = {
    "min_contractor_agreement": "contractor agreement",
    "min_gold_accuracy": "gold accuracy",
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _share(value: Any) -> float | None:
    return None if value is None else float(value)
