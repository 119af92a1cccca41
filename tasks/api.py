"""The contractor's flows over the REST API: projects, tasks, turns, candidates, judgements.

Same services and permission checks as the pages; candidates are blinded the same way
(never an endpoint, masked model names). Errors from services become 400/403/409 (marlin.api).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView, ListCreateAPIView, RetrieveAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marlin import health
from marlin.api import ModelCallThrottle, form_input, validated
from marlin.permissions import IsContractor
from reviews import selectors as review_selectors
from tasks import evidence_services, generation_services, selectors, services
from tasks.blinding import candidate_texts
from tasks.forms import TaskCreateForm
from tasks.models import Candidate, Judgement, Preference, Project, Task, Turn


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        # Never the endpoints: which models a project compares is not for contractors.
        fields = [
            "id",
            "name",
            "guidelines",
            "rubric_axes",
            "min_turns",
            "max_turns",
            "min_justification_chars",
            "pay_per_task",
            "hourly_rate_cap",
        ]


EVIDENCE_STATES = ["waiting", "off", "none", "pending", "failed", "ready"]


class EvidenceSerializer(serializers.Serializer):
    """A candidate's evidence (tasks.evidence_services.candidate_evidence), for the schema."""

    state = serializers.ChoiceField(
        choices=EVIDENCE_STATES,
        help_text="waiting: the turn's candidates are not all ready; off: checks cannot run on "
        "this server; none: no checks are set up; pending: queued or running; failed: the "
        "checks could not be run (see reason); ready: see summary.",
    )
    reason = serializers.CharField(required=False, help_text="off, none, failed: why.")
    admin_reason = serializers.CharField(required=False, help_text="off, for admins only.")
    status = serializers.CharField(required=False, help_text="pending: QUEUED or RUNNING.")
    base_status = serializers.CharField(
        required=False, allow_null=True, help_text="pending: the pinned commit's run."
    )
    summary = serializers.DictField(
        required=False,
        help_text="ready: applied, fixes and breaks (tests failing at the pinned commit and "
        "passing now, and the reverse; null without a baseline), checks [{name, kind, status, "
        "duration_ms, counts, delta, log, log_truncated}], acceptance [{test, outcome}], "
        "acceptance_passed, acceptance_total (null without acceptance tests).",
    )
    base_failed = serializers.BooleanField(
        required=False, help_text="ready: the checks failed at the pinned commit."
    )
    apply_error = serializers.CharField(required=False)
    acceptance_log = serializers.CharField(required=False)
    acceptance_status = serializers.CharField(required=False, allow_null=True)
    setup = serializers.DictField(required=False)
    recipe_digest = serializers.CharField(required=False)


class CandidateSerializer(serializers.ModelSerializer):
    """A candidate as people see it: slot A or B, never its endpoint; names masked."""

    # The masked texts are the page's own (tasks.blinding.candidate_texts), computed once.
    explanation = serializers.SerializerMethodField()
    diff = serializers.SerializerMethodField()
    apply_error = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    elapsed_seconds = serializers.FloatField(allow_null=True)
    evidence = serializers.SerializerMethodField()

    class Meta:
        model = Candidate
        fields = [
            "id",
            "slot",
            "status",
            "explanation",
            "diff",
            "applies_cleanly",
            "apply_error",
            "is_truncated",
            "error",
            "elapsed_seconds",
            "evidence",
        ]

    def get_diff(self, candidate: Candidate) -> str:
        return candidate_texts(candidate).diff

    def get_explanation(self, candidate: Candidate) -> str:
        return candidate_texts(candidate).explanation

    def get_apply_error(self, candidate: Candidate) -> str:
        return candidate_texts(candidate).apply_error

    def get_error(self, candidate: Candidate) -> str:
        return candidate_texts(candidate).error

    @extend_schema_field(EvidenceSerializer)
    def get_evidence(self, candidate: Candidate) -> dict[str, Any]:
        # A whole task's candidates come with their evidence attached (a constant number of
        # queries); a single candidate asks for its own.
        view = getattr(candidate, "evidence_view", None)
        if view is None:
            request = self.context.get("request")
            view = selectors.candidate_evidence_for_viewer(
                candidate=candidate, viewer=getattr(request, "user", None)
            )
        return view["evidence"]


class JudgementSerializer(serializers.ModelSerializer):
    class Meta:
        model = Judgement
        fields = ["round", "preference", "scores", "justification", "warnings", "updated_at"]


class TurnSerializer(serializers.ModelSerializer):
    candidates = CandidateSerializer(many=True, read_only=True)
    judgements = JudgementSerializer(many=True, read_only=True)

    class Meta:
        model = Turn
        fields = [
            "id",
            "number",
            "prompt",
            "active_seconds",
            "has_identical_candidates",
            "candidates",
            "judgements",
        ]


class TaskSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name")
    repository = serializers.CharField(source="repository.full_name")

    class Meta:
        model = Task
        fields = [
            "id",
            "title",
            "kind",
            "status",
            "round",
            "project",
            "repository",
            "base_ref",
            "commit_sha",
            "focus_files",
            "active_seconds",
            "created_at",
            "submitted_at",
            "accepted_at",
        ]


class TimelineEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    kind = serializers.CharField()
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    reason = serializers.CharField()


class FeedbackNoteSerializer(serializers.Serializer):
    turn = serializers.IntegerField(source="turn_id")
    slot = serializers.CharField()
    field = serializers.CharField()
    text = serializers.CharField()


class FeedbackSerializer(serializers.Serializer):
    round = serializers.IntegerField()
    feedback = serializers.CharField()
    rejects_task = serializers.BooleanField()
    notes = FeedbackNoteSerializer(many=True, source="notes.all")


class AcceptanceTestSerializer(serializers.Serializer):
    path = serializers.CharField(
        max_length=300, help_text="A plain relative path in the repository, e.g. tests/test_x.py."
    )
    content = serializers.CharField(help_text="The test file's text (at most 100 KB).")


class TaskDetailSerializer(TaskSerializer):
    turns = TurnSerializer(many=True, read_only=True)
    acceptance_tests = AcceptanceTestSerializer(many=True, read_only=True)
    feedback = serializers.SerializerMethodField()
    timeline = serializers.SerializerMethodField()

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "acceptance_tests", "turns", "feedback", "timeline"]

    def to_representation(self, task: Task) -> dict:
        # Every candidate's evidence in a constant number of queries (the reviewer's view of
        # the task is this serializer too).
        viewer = getattr(self.context.get("request"), "user", None)
        selectors.attach_evidence_views(task=task, viewer=viewer)
        return super().to_representation(task)

    @extend_schema_field(FeedbackSerializer(allow_null=True))
    def get_feedback(self, task: Task) -> dict | None:
        review = review_selectors.review_latest_bounce(task=task)
        return FeedbackSerializer(review).data if review is not None else None

    @extend_schema_field(TimelineEntrySerializer(many=True))
    def get_timeline(self, task: Task) -> list[dict]:
        viewer = self.context["request"].user
        entries = review_selectors.task_timeline(task=task, viewer=viewer)
        return TimelineEntrySerializer(entries, many=True).data


class ProjectListApi(ListAPIView):
    """Open projects a contractor can start a task in, with guidelines and rubric."""

    permission_classes = [IsContractor]
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return selectors.project_list_active().order_by("name")


class TaskCreateSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    repository = serializers.IntegerField()
    ref = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)
    title = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Task.Kind.choices)
    prompt = serializers.CharField()
    focus_files = serializers.ListField(
        child=serializers.CharField(max_length=500),
        required=False,
        max_length=50,
        help_text="Optional: the repository paths that matter (each must exist at the pinned "
        "commit); the models are told about them.",
    )
    acceptance_tests = AcceptanceTestSerializer(
        many=True,
        required=False,
        max_length=10,
        help_text="Optional, hidden from the models: test files written into each candidate's "
        "tree (and the pinned commit's) before the checks run; each candidate's evidence says "
        "how many pass.",
    )


_JOBS_DELAYED_HELP = (
    "True when the job queue cannot be reached right now: the candidates stay QUEUED and "
    "start by themselves once it is back (nothing to retry)."
)


def _jobs_delayed(turn: Turn) -> bool:
    return health.jobs_delayed(
        waiting=any(c.status == Candidate.Status.QUEUED for c in turn.candidates.all())
    )


class TaskCreatedSerializer(TaskSerializer):
    focus_files = serializers.ListField(child=serializers.CharField(), read_only=True)
    jobs_delayed = serializers.SerializerMethodField(help_text=_JOBS_DELAYED_HELP)

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "focus_files", "jobs_delayed"]

    @extend_schema_field(serializers.BooleanField())
    def get_jobs_delayed(self, task: Task) -> bool:
        return _jobs_delayed(task.turns.order_by("-number").first())


class TurnCreatedSerializer(TurnSerializer):
    jobs_delayed = serializers.SerializerMethodField(help_text=_JOBS_DELAYED_HELP)

    class Meta(TurnSerializer.Meta):
        fields = [*TurnSerializer.Meta.fields, "jobs_delayed"]

    @extend_schema_field(serializers.BooleanField())
    def get_jobs_delayed(self, turn: Turn) -> bool:
        return _jobs_delayed(turn)


class TaskListCreateApi(ListCreateAPIView):
    """Your tasks (newest first, `?status=` to filter); POST starts a task and both models."""

    permission_classes = [IsContractor]
    serializer_class = TaskSerializer

    def get_throttles(self):
        return [ModelCallThrottle()] if self.request.method == "POST" else []

    def get_queryset(self):
        tasks = selectors.task_list_for_contractor(user=self.request.user).order_by("-pk")
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in Task.Status.values:
                raise serializers.ValidationError({"status": [f"Unknown status {wanted!r}."]})
            tasks = tasks.filter(status=wanted)
        return tasks

    @extend_schema(request=TaskCreateSerializer, responses={201: TaskCreatedSerializer})
    def post(self, request: Request) -> Response:
        # The page's form holds the rules (open project, cloned repository, prompt length).
        form = validated(TaskCreateForm(form_input(request.data)))
        task = services.task_create(contractor=request.user, **form.cleaned_data)
        return Response(TaskCreatedSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskDetailApi(RetrieveAPIView):
    """One of your tasks: turns, blinded candidates, your judgements, feedback and timeline."""

    permission_classes = [IsContractor]
    serializer_class = TaskDetailSerializer

    def get_object(self) -> Task:
        return selectors.task_get_for_contractor(user=self.request.user, pk=self.kwargs["pk"])


class VerdictInputSerializer(serializers.Serializer):
    preference = serializers.ChoiceField(
        choices=Preference.choices, help_text="-3 (A much better) … 3 (B much better)."
    )
    scores = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text='{"A": {"<axis>": 1..5, ...}, "B": {...}} over the project\'s rubric axes.',
    )
    justification = serializers.CharField(max_length=20_000)


class EarlierTurnInputSerializer(VerdictInputSerializer):
    turn = serializers.IntegerField(min_value=1, help_text="The number of an earlier turn.")


class JudgementInputSerializer(VerdictInputSerializer):
    earlier_turns = EarlierTurnInputSerializer(
        many=True,
        required=False,
        default=list,
        max_length=100,
        help_text="While revising a bounced task: new judgements of earlier turns (the latest "
        "turn's is the body itself). Turns left out keep their judgement.",
    )
    confirm_warnings = serializers.BooleanField(
        default=False, help_text="Submit even though the judgement contradicts itself."
    )


class FollowUpInputSerializer(JudgementInputSerializer):
    prompt = serializers.CharField(help_text="The follow-up both models answer next.")


def _judgement_args(request: Request, serializer_class) -> dict[str, Any]:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    args = dict(data.validated_data)
    earlier = {}
    for verdict in args.pop("earlier_turns"):
        number = verdict.pop("turn")
        if number in earlier:
            raise serializers.ValidationError({"earlier_turns": [f"Turn {number} is given twice."]})
        earlier[number] = verdict
    return {**args, "earlier": earlier}


class TaskSubmitApi(APIView):
    """Judge the latest turn and send the task to review (this round).

    A self-contradicting judgement is refused with 400 and `warnings` unless
    `confirm_warnings` is true. Repeating the submit with the same judgement answers 200 and
    changes nothing; a different judgement for a task already submitted is refused with 409.
    """

    permission_classes = [IsContractor]

    @extend_schema(request=JudgementInputSerializer, responses={200: TaskSerializer})
    def post(self, request: Request, pk: int) -> Response:
        task = selectors.task_get_for_judging(user=request.user, pk=pk, repository=True)
        task = services.task_submit(
            task=task, by=request.user, **_judgement_args(request, JudgementInputSerializer)
        )
        return Response(TaskSerializer(task).data)


class TaskFollowUpApi(APIView):
    """Judge the latest turn, then ask both models a follow-up (a new turn)."""

    permission_classes = [IsContractor]
    throttle_classes = [ModelCallThrottle]

    @extend_schema(request=FollowUpInputSerializer, responses={201: TurnCreatedSerializer})
    def post(self, request: Request, pk: int) -> Response:
        task = selectors.task_get_for_judging(user=request.user, pk=pk)
        turn = services.task_follow_up(
            task=task, by=request.user, **_judgement_args(request, FollowUpInputSerializer)
        )
        return Response(TurnCreatedSerializer(turn).data, status=status.HTTP_201_CREATED)


class TaskReviseApi(APIView):
    """Reopen your bounced task as the next round."""

    permission_classes = [IsContractor]

    @extend_schema(request=None, responses={200: TaskSerializer})
    def post(self, request: Request, pk: int) -> Response:
        task = selectors.task_get_for_judging(user=request.user, pk=pk, repository=True)
        return Response(TaskSerializer(services.task_revise(task=task, by=request.user)).data)


class CandidateRegenerateApi(APIView):
    """Ask one of two candidates that made the same change again (the turn being judged)."""

    permission_classes = [IsContractor]
    throttle_classes = [ModelCallThrottle]

    @extend_schema(request=None, responses={202: CandidateSerializer})
    def post(self, request: Request, pk: int) -> Response:
        candidate = selectors.candidate_get_for_contractor(user=request.user, pk=pk)
        candidate = generation_services.candidate_regenerate(candidate=candidate, by=request.user)
        return Response(CandidateSerializer(candidate).data, status=status.HTTP_202_ACCEPTED)


class CandidateRetryApi(APIView):
    """Generate a failed candidate again."""

    permission_classes = [IsContractor]
    throttle_classes = [ModelCallThrottle]

    @extend_schema(request=None, responses={202: CandidateSerializer})
    def post(self, request: Request, pk: int) -> Response:
        candidate = selectors.candidate_get_for_contractor(user=request.user, pk=pk)
        candidate = generation_services.candidate_retry(candidate=candidate, by=request.user)
        return Response(CandidateSerializer(candidate).data, status=status.HTTP_202_ACCEPTED)


class CandidateEvidenceRetryApi(APIView):
    """Run a candidate's checks again after they failed to run (yours only; 400 otherwise)."""

    permission_classes = [IsContractor]

    @extend_schema(request=None, responses={202: CandidateSerializer})
    def post(self, request: Request, pk: int) -> Response:
        candidate = selectors.candidate_get_for_contractor(user=request.user, pk=pk)
        evidence_services.evidence_retry(candidate=candidate, by=request.user)
        data = CandidateSerializer(candidate, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)
