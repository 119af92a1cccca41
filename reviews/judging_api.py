"""Judging tasks over the API: the same services and rules as the pages (reviews/judging_views)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marlin.permissions import IsContractor
from reviews import quality_overlap
from reviews.models import JudgingTask
from tasks.api import VerdictInputSerializer
from tasks.blinding import candidate_texts


class JudgingTaskListApi(APIView):
    """Your judging tasks, newest first, and how many pairs wait for you."""

    permission_classes = [IsContractor]

    @extend_schema_serializer(component_name="JudgingTaskList")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="JudgingTaskRow")
        class Row(serializers.Serializer):
            id = serializers.IntegerField()
            status = serializers.CharField()
            project = serializers.IntegerField(source="project_id")
            earned = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True)
            created_at = serializers.DateTimeField()
            submitted_at = serializers.DateTimeField(allow_null=True)

        available = serializers.IntegerField(help_text="Pairs waiting for you.")
        results = Row(many=True)

    @extend_schema(operation_id="judging_tasks_list", responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        rows = quality_overlap.judging_tasks_of(user=request.user)[:200]
        data = {
            "available": quality_overlap.judging_work_available(user=request.user),
            "results": rows,
        }
        return Response(self.OutputSerializer(data).data)


class JudgingTaskDetailSerializer(serializers.Serializer):
    """The pair as shown: the task's description and prompts, candidates in shown slots.
    Never the first judgement, its author, the review, the models or the slot mapping."""

    class Shown(serializers.Serializer):
        slot = serializers.CharField()
        explanation = serializers.CharField()
        diff = serializers.CharField()
        applies_cleanly = serializers.BooleanField(allow_null=True)

    id = serializers.IntegerField()
    status = serializers.CharField()
    title = serializers.CharField()
    kind = serializers.CharField()
    repository = serializers.CharField()
    commit_sha = serializers.CharField()
    guidelines = serializers.CharField()
    earlier_prompts = serializers.ListField(child=serializers.CharField())
    prompt = serializers.CharField()
    candidates = Shown(many=True)
    preference = serializers.IntegerField(allow_null=True)
    scores = serializers.JSONField(allow_null=True)
    justification = serializers.CharField(allow_blank=True)
    earned = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True)


def _shown_candidate(slot: str, candidate: Any) -> dict[str, Any]:
    texts = candidate_texts(candidate)  # as the page shows them
    return {
        "slot": slot,
        "explanation": texts.explanation,
        "diff": texts.diff,
        "applies_cleanly": candidate.applies_cleanly,
    }


def _detail(judging_task: JudgingTask) -> dict[str, Any]:
    turn, task = judging_task.turn, judging_task.turn.task
    shown = quality_overlap.judging_task_candidates(judging_task=judging_task)
    return {
        "id": judging_task.pk,
        "status": judging_task.status,
        "title": task.title,
        "kind": task.kind,
        "repository": task.repository.full_name,
        "commit_sha": task.commit_sha,
        "guidelines": judging_task.project.guidelines,
        "earlier_prompts": list(
            task.turns.filter(number__lt=turn.number).values_list("prompt", flat=True)
        ),
        "prompt": turn.prompt,
        "candidates": [_shown_candidate("A", shown.a), _shown_candidate("B", shown.b)],
        "preference": judging_task.preference,
        "scores": judging_task.scores,
        "justification": judging_task.justification,
        "earned": judging_task.earned,
    }


class JudgingTaskNextApi(APIView):
    """Take the next pair to judge (or get the one you hold); 204 when none waits for you."""

    permission_classes = [IsContractor]

    @extend_schema(request=None, responses={200: JudgingTaskDetailSerializer, 204: None})
    def post(self, request: Request) -> Response:
        judging_task = quality_overlap.judging_task_next(user=request.user)
        if judging_task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(JudgingTaskDetailSerializer(_detail(judging_task)).data)


class JudgingTaskDetailApi(APIView):
    """One of your judging tasks."""

    permission_classes = [IsContractor]

    @extend_schema(responses={200: JudgingTaskDetailSerializer})
    def get(self, request: Request, pk: int) -> Response:
        judging_task = quality_overlap.judging_task_get_for_contractor(user=request.user, pk=pk)
        return Response(JudgingTaskDetailSerializer(_detail(judging_task)).data)


class JudgingTaskSubmitApi(APIView):
    """Judge the pair you hold; paid at the project's judging rate."""

    permission_classes = [IsContractor]

    @extend_schema(request=VerdictInputSerializer, responses={200: JudgingTaskDetailSerializer})
    def post(self, request: Request, pk: int) -> Response:
        judging_task = quality_overlap.judging_task_get_for_contractor(user=request.user, pk=pk)
        data = VerdictInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        judging_task = quality_overlap.judging_task_submit(
            judging_task=judging_task, by=request.user, **data.validated_data
        )
        return Response(JudgingTaskDetailSerializer(_detail(judging_task)).data)
