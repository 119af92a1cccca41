"""Reviewer audits over the REST API, with the same rules as the pages.

Services raise ApplicationError subclasses; marlin.api maps them to 400, 403 and 409.
This module imports nothing from reviews.api, which imports OverturnRateSerializer from
here for the dashboard.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marlin.permissions import IsReviewer
from reviews import quality_audits
from reviews.models import ReviewAudit


class AuditSerializer(serializers.ModelSerializer):
    task = serializers.IntegerField(source="review.task_id")
    task_title = serializers.CharField(source="review.task.title")
    project = serializers.CharField(source="review.task.project.name")
    round = serializers.IntegerField(source="review.round")
    reviewer = serializers.CharField(
        source="review.reviewer.username", help_text="Who accepted the task (audited)."
    )
    accepted_at = serializers.DateTimeField(source="review.created_at")
    held_by_you = serializers.SerializerMethodField()

    class Meta:
        model = ReviewAudit
        fields = [
            "id",
            "status",
            "task",
            "task_title",
            "project",
            "round",
            "reviewer",
            "accepted_at",
            "held_by_you",
            "note",
            "decided_at",
            "created_at",
        ]

    def get_held_by_you(self, audit: ReviewAudit) -> bool:
        return audit.auditor_id == self.context["request"].user.pk


class AuditListApi(ListAPIView):
    """Audits you hold, then open audits you may take (never of your own review or task)."""

    permission_classes = [IsReviewer]
    serializer_class = AuditSerializer

    def get_queryset(self):
        return quality_audits.audit_queue(user=self.request.user)


class AuditTakeApi(APIView):
    """Take an open audit; 409 when another reviewer took it first."""

    permission_classes = [IsReviewer]

    @extend_schema(request=None, responses={200: AuditSerializer})
    def post(self, request: Request, pk: int) -> Response:
        audit = quality_audits.audit_get_for_user(user=request.user, pk=pk)
        audit = quality_audits.audit_take(audit=audit, by=request.user)
        return Response(AuditSerializer(audit, context={"request": request}).data)


class AuditDecideInputSerializer(serializers.Serializer):
    overturn = serializers.BooleanField(
        help_text="true: the task should not have been accepted; false: uphold."
    )
    note = serializers.CharField(
        max_length=quality_audits.NOTE_MAX_CHARS,
        required=False,
        default="",
        allow_blank=True,
        help_text="Required to overturn.",
    )


class AuditDecideApi(APIView):
    """Uphold or overturn the acceptance of an audit you hold."""

    permission_classes = [IsReviewer]

    @extend_schema(request=AuditDecideInputSerializer, responses={200: AuditSerializer})
    def post(self, request: Request, pk: int) -> Response:
        audit = quality_audits.audit_get_for_user(user=request.user, pk=pk)
        data = AuditDecideInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        audit = quality_audits.audit_decide(
            audit=audit,
            by=request.user,
            overturn=data.validated_data["overturn"],
            note=data.validated_data["note"],
        )
        return Response(AuditSerializer(audit, context={"request": request}).data)


class OverturnRateSerializer(serializers.Serializer):
    reviewer_id = serializers.IntegerField()
    username = serializers.CharField()
    audited = serializers.IntegerField(help_text="Decided audits of this reviewer's acceptances.")
    overturned = serializers.IntegerField()
    rate = serializers.FloatField()
    low = serializers.FloatField(help_text="95% Wilson interval, low end.")
    high = serializers.FloatField(help_text="95% Wilson interval, high end.")
