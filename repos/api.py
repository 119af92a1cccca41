from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marlin.exceptions import ApplicationError
from repos.forms import MAX_UPLOAD_BYTES
from repos.services import repository_import


class CanImportRepositories(BasePermission):
    def has_permission(self, request, view) -> bool:
        # An import adds rows and overwrites existing ones: both permissions, as in the admin.
        return bool(
            request.user.is_authenticated
            and request.user.has_perms(["repos.add_repository", "repos.change_repository"])
        )


class RepositoryImportApi(APIView):
    """Upsert the catalogue from an uploaded file (admins)."""

    parser_classes = [MultiPartParser]
    permission_classes = [CanImportRepositories]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(
            help_text="GitHub API repository objects (JSON array or JSONL) or a CSV."
        )

        def validate_file(self, upload):
            if upload.size > MAX_UPLOAD_BYTES:
                raise serializers.ValidationError("The file is too large.")
            return upload

    class RejectionSerializer(serializers.Serializer):
        line = serializers.IntegerField(help_text="Line (or array position) of the row.")
        reason = serializers.CharField()

    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField()
        updated = serializers.IntegerField()
        rejected = serializers.ListField(child=serializers.DictField())

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        try:
            report = repository_import(content=upload.read(), filename=upload.name)
        except ApplicationError as exc:
            return Response({"detail": exc.message}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {
                "created": report.created,
                "updated": report.updated,
                "rejected": [{"line": line, "reason": reason} for line, reason in report.rejected],
            }
        )
