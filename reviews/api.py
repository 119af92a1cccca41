"""The review and pay flows over the REST API, with the same rules as the pages.

Services raise ApplicationError subclasses; marlin.api maps them to 400, 403 and 409.

Each API view owns its serializers: nested InputSerializer, OutputSerializer and
FilterSerializer (query parameters). The module-level ones are shared by several views, as
the comment above each says, so nesting them would write them twice. component_name keeps
the schema's component names: a nested OutputSerializer would otherwise be "Output".
"""

from __future__ import annotations

from django.http import FileResponse, QueryDict
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView, ListCreateAPIView, RetrieveAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marlin.api import form_input, validated
from marlin.permissions import (
    CanExport,
    IsContractor,
    IsOverseer,
    IsReviewer,
    IsReviewerOrOverseer,
)
from reviews import (
    claim_services,
    earning_selectors,
    export_job_services,
    leaderboard,
    metrics,
    notification_selectors,
    notification_services,
    quality_agreement,
    quality_flags,
    selectors,
    services,
)
from reviews.audit_api import OverturnRateSerializer
from reviews.dashboard_page import dashboard_page_figures
from reviews.earning_selectors import Period
from reviews.export_download import CONTENT_TYPES, export_download_response
from reviews.export_filters import EVIDENCE_FILTERS
from reviews.forms import DashboardForm, ExportForm, PeriodForm, QueueFilterForm
from reviews.models import ExportJob, Notification, Review, ReviewNote, SubmissionFlag
from reviews.round_changes import round_changes
from tasks.api import TaskDetailSerializer
from tasks.models import Task
from tasks.selectors import task_get_for_reviewer


# ReviewClaimApi's answer and ReviewTaskApi's `claim`.
class ClaimSerializer(serializers.Serializer):
    task = serializers.IntegerField(source="task_id")
    round = serializers.IntegerField()
    claimed_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


# ReviewDecideApi's answer and each of ReviewTaskApi's `reviews`.
class ReviewSerializer(serializers.ModelSerializer):
    class NoteOutSerializer(serializers.ModelSerializer):
        class Meta:
            model = ReviewNote
            fields = ["turn", "slot", "field", "text"]

    notes = NoteOutSerializer(many=True, read_only=True)
    task_status = serializers.CharField(source="task.status")

    class Meta:
        model = Review
        fields = [
            "id",
            "task",
            "round",
            "decision",
            "feedback",
            "rejects_task",
            "notes",
            "task_status",
            "created_at",
        ]


# The query of PayoutsApi and ReviewerMetricsApi.
class PeriodQuerySerializer(serializers.Serializer):
    start = serializers.DateField(
        required=False, help_text="First day; default: 1st of this month."
    )
    end = serializers.DateField(required=False, help_text="Last day, included; default: today.")


# ExportJobListCreateApi (its list and a started export) and ExportJobDetailApi.
class ExportJobSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()
    left_out = serializers.DictField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text='Judged turns not in the file, by reason (e.g. {"ties": 3}).',
    )
    message = serializers.SerializerMethodField(
        help_text="Once ready: the records and what was left out, or that 0 records match."
    )

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "format",
            "filters",
            "prompt_style",
            "status",
            "total",
            "done",
            "records",
            "left_out",
            "message",
            "size_bytes",
            "sha256",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
        ]

    def get_download_url(self, job: ExportJob) -> str | None:
        if job.status != ExportJob.Status.SUCCEEDED:
            return None
        return reverse("api-export-download", args=[job.pk])

    def get_message(self, job: ExportJob) -> str:
        return export_job_services.export_job_message(job)


# The leaderboard family (DashboardApi's `leaderboard`) stays at module level: the rating
# fields reach two of its serializers by inheritance, and a class nested in another class's
# body cannot see that body's names, so nested they could not share them.
class LeaderboardRatingSerializer(serializers.Serializer):
    strength = serializers.FloatField(
        allow_null=True, help_text="Bradley-Terry log-strength, centred; null: no comparisons."
    )
    low = serializers.FloatField(allow_null=True, help_text="95% bootstrap interval, low end.")
    high = serializers.FloatField(allow_null=True, help_text="95% bootstrap interval, high end.")
    comparisons = serializers.IntegerField()
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()
    win_rate = serializers.FloatField(allow_null=True, help_text="Ties count half.")
    provisional = serializers.BooleanField(
        help_text="Fewer comparisons than min_comparisons, or an interval that says nothing."
    )
    provisional_reason = serializers.CharField(allow_blank=True)


class LeaderboardModelSerializer(LeaderboardRatingSerializer):
    endpoint = serializers.IntegerField()
    name = serializers.CharField()
    rank = serializers.IntegerField(allow_null=True, help_text="Null: no comparisons yet.")
    retired = serializers.BooleanField(help_text="In the pool but drawing no new tasks.")
    in_pool = serializers.BooleanField(
        help_text="False: answered judged turns of the project but has no pool row."
    )


class LeaderboardCellSerializer(serializers.Serializer):
    endpoint = serializers.IntegerField(help_text="The opponent.")
    win_rate = serializers.FloatField(allow_null=True, help_text="Null: they never met.")
    comparisons = serializers.IntegerField()
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()


class LeaderboardMatrixRowSerializer(serializers.Serializer):
    endpoint = serializers.IntegerField()
    against = LeaderboardCellSerializer(many=True)


class LeaderboardAxisModelSerializer(LeaderboardRatingSerializer):
    endpoint = serializers.IntegerField()
    name = serializers.CharField()


class LeaderboardAxisSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    models = LeaderboardAxisModelSerializer(many=True, help_text="Best first on this axis.")


class LeaderboardSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    min_comparisons = serializers.IntegerField()
    judged_turns = serializers.IntegerField()
    models = LeaderboardModelSerializer(many=True, help_text="Best first.")
    win_matrix = LeaderboardMatrixRowSerializer(many=True)
    axes = LeaderboardAxisSerializer(many=True)


class ReviewQueueApi(ListAPIView):
    """Submitted tasks waiting for a decision, oldest first (never your own);
    `flag=<kind>` keeps flagged ones, `sort=flags` puts the most flagged first."""

    permission_classes = [IsReviewer]

    # Documents the query; QueueFilterForm checks it, for this and the queue page alike.
    class FilterSerializer(serializers.Serializer):
        project = serializers.IntegerField(required=False, help_text="A project id.")
        repository = serializers.IntegerField(required=False, help_text="A repository id.")
        kind = serializers.ChoiceField(choices=Task.Kind.choices, required=False)
        flag = serializers.ChoiceField(
            choices=SubmissionFlag.Kind.choices,
            required=False,
            help_text="Only tasks whose current round has a flag of this kind.",
        )
        sort = serializers.ChoiceField(
            choices=[(quality_flags.SORT_BY_FLAGS, "Most flags first")],
            required=False,
            help_text="Default: oldest submission first.",
        )

    @extend_schema_serializer(component_name="QueueTask")
    class OutputSerializer(serializers.ModelSerializer):
        repository = serializers.CharField(source="repository.full_name")
        project = serializers.CharField(source="project.name")
        claimed = serializers.SerializerMethodField()
        claimed_by_you = serializers.SerializerMethodField()
        claim_expires_at = serializers.DateTimeField(allow_null=True)
        flag_count = serializers.IntegerField(read_only=True)
        flags = serializers.SerializerMethodField()

        class Meta:
            model = Task
            fields = [
                "id",
                "title",
                "kind",
                "repository",
                "project",
                "round",
                "submitted_at",
                "claimed",
                "claimed_by_you",
                "claim_expires_at",
                "flag_count",
                "flags",
            ]

        def get_flags(self, task: Task) -> list[dict[str, str]]:
            return [
                {"kind": f.kind, "detail": f.detail} for f in quality_flags.task_current_flags(task)
            ]

        def get_claimed(self, task: Task) -> bool:
            return task.claim_reviewer_id is not None

        def get_claimed_by_you(self, task: Task) -> bool:
            return task.claim_reviewer_id == self.context["request"].user.pk

    serializer_class = OutputSerializer

    @extend_schema(parameters=[FilterSerializer])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        form = validated(QueueFilterForm(self.request.query_params))
        return selectors.review_queue(user=self.request.user, **form.filters())


class ReviewClaimApi(APIView):
    """Claim a submitted task (201); 409 when another reviewer holds it."""

    permission_classes = [IsReviewer]

    @extend_schema(request=None, responses={201: ClaimSerializer})
    def post(self, request: Request, pk: int) -> Response:
        task = task_get_for_reviewer(user=request.user, pk=pk)
        claim = claim_services.review_claim(task=task, reviewer=request.user)
        return Response(ClaimSerializer(claim).data, status=status.HTTP_201_CREATED)


class ReviewReleaseApi(APIView):
    """Give your claim back; the task returns to the queue."""

    permission_classes = [IsReviewer]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, pk: int) -> Response:
        task = task_get_for_reviewer(user=request.user, pk=pk)
        claim_services.review_release(task=task, reviewer=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReviewDecideApi(APIView):
    """Accept or bounce the round you hold the claim on (201); 409 if decided or not held."""

    permission_classes = [IsReviewer]

    @extend_schema_serializer(component_name="Decision")
    class InputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="Note")
        class NoteSerializer(serializers.Serializer):
            turn = serializers.IntegerField(help_text="Id of a turn of this task.")
            slot = serializers.ChoiceField(choices=["", "A", "B"], required=False, default="")
            field = serializers.CharField(
                max_length=40,
                required=False,
                default="",
                allow_blank=True,
                help_text='"" (the whole turn), "preference", "justification" or a rubric axis '
                "key (with slot).",
            )
            text = serializers.CharField(max_length=services.FEEDBACK_MAX_CHARS)

        decision = serializers.ChoiceField(choices=Review.Decision.choices)
        feedback = serializers.CharField(
            max_length=services.FEEDBACK_MAX_CHARS, required=False, default="", allow_blank=True
        )
        notes = NoteSerializer(many=True, required=False, default=list)

    @extend_schema(request=InputSerializer, responses={201: ReviewSerializer})
    def post(self, request: Request, pk: int) -> Response:
        task = task_get_for_reviewer(user=request.user, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        review = services.review_decide(
            task=task,
            reviewer=request.user,
            decision=data.validated_data["decision"],
            feedback=data.validated_data["feedback"],
            notes=[
                services.NoteInput(
                    turn_id=n["turn"], slot=n["slot"], field=n["field"], text=n["text"]
                )
                for n in data.validated_data["notes"]
            ],
        )
        review = get_object_or_404(Review.objects.select_related("task"), pk=review.pk)
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)


class MyEarningsApi(APIView):
    """Your tasks, their states, time on task and pay: pending, accepted and total."""

    permission_classes = [IsContractor]

    @extend_schema_serializer(component_name="Earnings")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="EarningsTask")
        class TaskSerializer(serializers.ModelSerializer):
            pay = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)

            class Meta:
                model = Task
                fields = ["id", "title", "status", "round", "active_seconds", "pay"]

        pending = serializers.DecimalField(max_digits=12, decimal_places=2)
        accepted = serializers.DecimalField(max_digits=12, decimal_places=2)
        judged = serializers.IntegerField(help_text="Pairs you judged (judging tasks).")
        judging = serializers.DecimalField(
            max_digits=12, decimal_places=2, help_text="Their pay, fixed when each was submitted."
        )
        total = serializers.DecimalField(max_digits=12, decimal_places=2)
        tasks = TaskSerializer(many=True)

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        summary = earning_selectors.contractor_earnings(user=request.user)
        return Response(self.OutputSerializer(summary).data)


def _period(request: Request) -> Period:
    form = PeriodForm(request.query_params or None)
    if form.is_bound and not form.is_valid():
        raise serializers.ValidationError(form.errors.get_json_data())
    return form.period()


def _for_period(request: Request, serializer_class, **parts) -> Response:
    """{"start", "end", and each part built for the requested period}."""
    period = _period(request)
    data = {"start": period.start, "end": period.end}
    data.update({name: build(period=period) for name, build in parts.items()})
    return Response(serializer_class(data).data)


class PayoutsApi(APIView):
    """Totals per contractor and per reviewer for a period (?start=YYYY-MM-DD&end=...)."""

    permission_classes = [IsOverseer]

    @extend_schema_serializer(component_name="Payouts")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="PayoutContractor")
        class ContractorSerializer(serializers.Serializer):
            contractor_id = serializers.IntegerField()
            username = serializers.CharField()
            email = serializers.CharField()
            tasks = serializers.IntegerField()
            hours = serializers.FloatField()
            judged = serializers.IntegerField(
                help_text="Pairs judged (judging tasks) in the period."
            )
            judging_amount = serializers.DecimalField(max_digits=12, decimal_places=2)
            amount = serializers.DecimalField(
                max_digits=12,
                decimal_places=2,
                help_text="Accepted tasks and judged pairs together.",
            )

        @extend_schema_serializer(component_name="PayoutReviewer")
        class ReviewerSerializer(serializers.Serializer):
            reviewer_id = serializers.IntegerField()
            username = serializers.CharField()
            decisions = serializers.IntegerField()
            accepted = serializers.IntegerField()
            bounced = serializers.IntegerField()
            accepted_pay = serializers.DecimalField(max_digits=12, decimal_places=2)

        start = serializers.DateField()
        end = serializers.DateField()
        contractors = ContractorSerializer(many=True)
        reviewers = ReviewerSerializer(many=True)

    @extend_schema(parameters=[PeriodQuerySerializer], responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        return _for_period(
            request,
            self.OutputSerializer,
            contractors=earning_selectors.payout_by_contractor,
            reviewers=earning_selectors.totals_by_reviewer,
        )


class ReviewerMetricsApi(APIView):
    """Reviews per hour, bounce rate and median time to decision per reviewer for a period."""

    permission_classes = [IsOverseer]

    @extend_schema_serializer(component_name="ReviewerMetrics")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="ReviewerMetric")
        class ReviewerSerializer(serializers.Serializer):
            reviewer_id = serializers.IntegerField()
            username = serializers.CharField()
            decisions = serializers.IntegerField()
            bounce_rate = serializers.FloatField()
            median_seconds_to_decision = serializers.FloatField(allow_null=True)
            reviews_per_hour = serializers.FloatField(allow_null=True)

        start = serializers.DateField()
        end = serializers.DateField()
        reviewers = ReviewerSerializer(many=True)

    @extend_schema(parameters=[PeriodQuerySerializer], responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        return _for_period(request, self.OutputSerializer, reviewers=metrics.reviewer_metrics)


class NotificationListApi(ListAPIView):
    """Your notifications, newest first."""

    @extend_schema_serializer(component_name="Notification")
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Notification
            fields = ["id", "task", "message", "created_at", "read_at"]

    serializer_class = OutputSerializer

    def get_queryset(self):
        return notification_selectors.notifications_for(user=self.request.user)


class NotificationsReadApi(APIView):
    """Mark all your notifications as read."""

    @extend_schema(request=None, responses={200: None})
    def post(self, request: Request) -> Response:
        count = notification_services.notifications_mark_read(user=request.user)
        return Response({"marked_read": count})


class ReviewTaskApi(RetrieveAPIView):
    """A submitted (or decided) task as its reviewer sees it; never your own task."""

    permission_classes = [IsReviewerOrOverseer]

    @extend_schema_serializer(component_name="ReviewTask")
    class OutputSerializer(TaskDetailSerializer):
        """What a reviewer sees: the task as submitted, every round's judgements, the claim,
        earlier decisions and what changed since the last round (by turn id)."""

        claim = serializers.SerializerMethodField()
        reviews = serializers.SerializerMethodField()
        changes = serializers.SerializerMethodField()

        class Meta(TaskDetailSerializer.Meta):
            fields = [*TaskDetailSerializer.Meta.fields, "claim", "reviews", "changes"]

        @extend_schema_field(ClaimSerializer(allow_null=True))
        def get_claim(self, task: Task) -> dict | None:
            claim = selectors.review_claim_open(task=task)
            return ClaimSerializer(claim).data if claim else None

        @extend_schema_field(ReviewSerializer(many=True))
        def get_reviews(self, task: Task) -> list[dict]:
            reviews = task.reviews.select_related("task").prefetch_related("notes")
            return ReviewSerializer(reviews, many=True).data

        @extend_schema_field(serializers.DictField())
        def get_changes(self, task: Task) -> dict:
            return {
                str(turn_id): {
                    "is_new": change.is_new,
                    "preference_was": change.preference_was,
                    "scores_was": change.scores_was,
                    "justification_diff": change.justification_diff,
                }
                for turn_id, change in round_changes(task).items()
            }

    serializer_class = OutputSerializer

    def get_object(self) -> Task:
        return task_get_for_reviewer(user=self.request.user, pk=self.kwargs["pk"])


class ExportJobListCreateApi(ListCreateAPIView):
    """Exports, newest first; POST starts one (the same fields and rules as the export page)."""

    permission_classes = [CanExport]
    serializer_class = ExportJobSerializer
    queryset = ExportJob.objects.order_by("-created_at", "-pk")

    @extend_schema_serializer(component_name="ExportRequest")
    class InputSerializer(serializers.Serializer):
        format = serializers.CharField(help_text="native, trl, openai, csv or criterion:<axis>")
        project = serializers.IntegerField(required=False)
        include_unaccepted = serializers.BooleanField(required=False, default=False)
        submitted_from = serializers.DateField(required=False)
        submitted_to = serializers.DateField(required=False)
        repositories = serializers.CharField(
            required=False, help_text="owner/name, comma-separated"
        )
        kinds = serializers.ListField(child=serializers.CharField(), required=False)
        endpoints = serializers.ListField(child=serializers.IntegerField(), required=False)
        contractor = serializers.CharField(required=False, help_text="a username")
        min_strength = serializers.IntegerField(required=False, min_value=0, max_value=3)
        evidence = serializers.ChoiceField(
            choices=EVIDENCE_FILTERS,
            required=False,
            help_text="agrees: only turns whose evidence (tests fixed minus broken) points the "
            "way of the preference; disagrees: only those where it points the other way.",
        )
        min_contractor_agreement = serializers.FloatField(
            required=False,
            min_value=0,
            max_value=1,
            help_text="0..1: only tasks of contractors whose preference direction matched the "
            "other rater's on at least this share of their agreement pairs (contractors with "
            "no pair are left out).",
        )
        min_gold_accuracy = serializers.FloatField(
            required=False,
            min_value=0,
            max_value=1,
            help_text="0..1: only tasks of contractors right on at least this share of their "
            "gold turns (contractors with none graded are left out).",
        )
        prompt_style = serializers.ChoiceField(
            choices=ExportJob.PromptStyle.choices,
            required=False,
            default=ExportJob.PromptStyle.MODEL,
            help_text="The prompt in pairwise formats: what the model was sent, or the bare "
            "prompts.",
        )

    # The InputSerializer documents the body; the ExportForm validates it, as on the page.
    @extend_schema(request=InputSerializer, responses={202: ExportJobSerializer})
    def post(self, request: Request) -> Response:
        form = validated(ExportForm(_form_data(form_input(request.data))))
        job = export_job_services.export_job_start(
            by=request.user,
            fmt=form.cleaned_data["format"],
            filters=form.filters(),
            prompt_style=form.cleaned_data["prompt_style"],
        )
        return Response(ExportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


def _form_data(data) -> QueryDict | dict:
    """JSON lists (kinds, endpoints) as a form's multi-valued fields."""
    if isinstance(data, QueryDict):
        return data
    form_data = QueryDict(mutable=True)
    for key, value in data.items():
        if isinstance(value, list):
            form_data.setlist(key, [str(v) for v in value])
        elif isinstance(value, bool):
            form_data[key] = "on" if value else ""
        elif value is not None:
            form_data[key] = str(value)
    return form_data


class ExportJobDetailApi(RetrieveAPIView):
    """An export's progress (done / total judged turns) and, when ready, its download URL."""

    permission_classes = [CanExport]
    serializer_class = ExportJobSerializer
    queryset = ExportJob.objects.all()


class ExportJobDownloadApi(APIView):
    """The export file (JSONL or CSV)."""

    permission_classes = [CanExport]

    @extend_schema(
        responses={
            (200, content_type): OpenApiTypes.BINARY for content_type in CONTENT_TYPES.values()
        }
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        return export_download_response(pk=pk)


class DashboardApi(APIView):
    """The dashboard's figures: strengths with intervals, win rates, position bias, mean
    scores, applies-cleanly rates, bounce rate, rounds, time on task and throughput; for a
    project, its leaderboard too (every model of the pool, the win matrix, per-axis
    strengths)."""

    permission_classes = [IsOverseer]

    class FilterSerializer(serializers.Serializer):
        project = serializers.IntegerField(
            required=False, help_text="A project id; default: all (and no leaderboard)."
        )

    @extend_schema_serializer(component_name="Dashboard")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="GoldAccuracy")
        class GoldAccuracySerializer(serializers.Serializer):
            contractor_id = serializers.IntegerField()
            username = serializers.CharField()
            graded = serializers.IntegerField(help_text="Gold judging tasks submitted.")
            right = serializers.IntegerField(
                help_text="Of those, the ones matching the gold answer."
            )
            accuracy = serializers.FloatField()

        strengths = serializers.ListField(child=serializers.DictField())
        position_bias = serializers.DictField()
        mean_scores = serializers.DictField()
        applies_cleanly = serializers.DictField()
        evidence_clean = serializers.DictField()
        submissions_per_day = serializers.DictField()
        reviews_per_day = serializers.DictField()
        judged_turns = serializers.IntegerField()
        bounce_rate = serializers.FloatField(allow_null=True)
        decisions = serializers.IntegerField()
        rounds_per_task = serializers.FloatField(allow_null=True)
        median_seconds_on_task = serializers.FloatField(allow_null=True)
        score_distributions = serializers.DictField()
        leaderboard = LeaderboardSerializer(
            allow_null=True, help_text="The project's leaderboard; null without a project."
        )
        agreement = serializers.DictField(
            help_text="Direction agreement, weighted kappa and Krippendorff's alpha per axis, "
            "with 95% bootstrap intervals: overall, per contractor and per reviewer. Each "
            'figure is {"estimate", "low", "high", "n", "reason"}; estimate null with a '
            "reason when undefined (fewer than 2 pairs, no variation)."
        )
        gold_accuracy = GoldAccuracySerializer(many=True)
        overturn_rates = OverturnRateSerializer(
            many=True,
            help_text="Per audited reviewer: audits decided, overturned, rate, 95% Wilson "
            "interval.",
        )

    # The OutputSerializer documents the answer; the figures go out as assembled here.
    @extend_schema(parameters=[FilterSerializer], responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        form = validated(DashboardForm(request.query_params))
        page = dashboard_page_figures(project=form.cleaned_data["project"])
        board = page.board
        return Response(
            {
                **page.chart_data,
                "judged_turns": board.judged_turns,
                "bounce_rate": board.bounce_rate,
                "decisions": board.decisions,
                "rounds_per_task": board.rounds_per_task,
                "median_seconds_on_task": board.median_seconds_on_task,
                "score_distributions": board.score_distributions,
                "leaderboard": (
                    LeaderboardSerializer(leaderboard.leaderboard_data(page.leaderboard)).data
                    if page.leaderboard
                    else None
                ),
                "agreement": quality_agreement.agreement_data(page.agreement),
                "gold_accuracy": self.OutputSerializer.GoldAccuracySerializer(
                    page.gold_accuracy, many=True
                ).data,
                "overturn_rates": OverturnRateSerializer(page.overturn_rates, many=True).data,
            }
        )
