"""Line comments over the REST API, under the same rules as the pages.

Services raise ApplicationError subclasses; marlin.api maps them to 400, 403 and 409.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews import comment_services
from reviews.comment_selectors import line_comment_data, line_comments_visible
from reviews.models import LineComment
from tasks.selectors import candidate_get_for_viewer

_INT_MAX = 2_147_483_647


class LineCommentInputSerializer(serializers.Serializer):
    path = serializers.CharField(
        max_length=comment_services.PATH_MAX_CHARS,
        trim_whitespace=False,
        help_text="The file's path after the change (before it, for a removed file).",
    )
    side = serializers.ChoiceField(
        choices=LineComment.Side.choices, help_text='"old": before the change; "new": after.'
    )
    line = serializers.IntegerField(min_value=1, max_value=_INT_MAX)
    end_line = serializers.IntegerField(
        min_value=1,
        max_value=_INT_MAX,
        required=False,
        allow_null=True,
        default=None,
        help_text="The last line of a range (on the same side); empty for one line.",
    )
    text = serializers.CharField(max_length=comment_services.TEXT_MAX_CHARS)


class LineCommentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    candidate = serializers.IntegerField()
    path = serializers.CharField()
    side = serializers.ChoiceField(choices=LineComment.Side.choices)
    line = serializers.IntegerField()
    end_line = serializers.IntegerField(allow_null=True)
    text = serializers.CharField()
    role = serializers.ChoiceField(choices=LineComment.Role.choices)
    round = serializers.IntegerField()
    author = serializers.CharField(help_text='"You", "Contractor" or "Reviewer, round N".')
    is_draft = serializers.BooleanField(
        help_text="A reviewer's comment not yet part of a decision (seen by them only)."
    )


def _out(comment: LineComment, request: Request) -> dict:
    data = line_comment_data(comment, viewer=request.user, can_delete=False)
    data.pop("delete_url")
    return data


class LineCommentListCreateApi(APIView):
    """A candidate's line comments you may read; or comment on a line of its diff (201).

    The task's contractor comments while judging it; a reviewer while holding its claim.
    """

    @extend_schema(responses={200: LineCommentSerializer(many=True)})
    def get(self, request: Request, pk: int) -> Response:
        candidate = candidate_get_for_viewer(user=request.user, pk=pk)
        comments = line_comments_visible(task=candidate.turn.task, viewer=request.user).filter(
            candidate=candidate
        )
        return Response([_out(c, request) for c in comments])

    @extend_schema(request=LineCommentInputSerializer, responses={201: LineCommentSerializer})
    def post(self, request: Request, pk: int) -> Response:
        candidate = candidate_get_for_viewer(user=request.user, pk=pk)
        data = LineCommentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = comment_services.line_comment_add(
            candidate=candidate, by=request.user, **data.validated_data
        )
        return Response(_out(comment, request), status=status.HTTP_201_CREATED)


class LineCommentDeleteApi(APIView):
    """Delete your own comment (204): a contractor's while judging, a reviewer's draft."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        comment = get_object_or_404(LineComment.objects.select_related("candidate"), pk=pk)
        candidate_get_for_viewer(user=request.user, pk=comment.candidate_id)
        comment_services.line_comment_delete(comment=comment, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
