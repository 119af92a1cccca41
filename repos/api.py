from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView, RetrieveAPIView, UpdateAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marlin.api import ModelPermissions, validated
from marlin.exceptions import ApplicationError
from marlin.permissions import can_clone_repositories
from repos import selectors
from repos.forms import MAX_UPLOAD_BYTES, CatalogueFilterForm
from repos.git_client import GitError
from repos.models import Repository
from repos.services import (
    repository_browse,
    repository_import,
    repository_queue_clone,
    repository_read_text,
    repository_refs,
    repository_resolve_commit,
)


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


class CatalogueQuerySerializer(serializers.Serializer):
    q = serializers.CharField(required=False, help_text="Words in the name or description.")
    language = serializers.CharField(required=False)
    topic = serializers.CharField(required=False)
    license = serializers.CharField(required=False)
    min_stars = serializers.IntegerField(required=False, min_value=0)
    max_stars = serializers.IntegerField(required=False, min_value=0)
    sort = serializers.ChoiceField(choices=["stars", "name", "least_used"], required=False)


class CappedPagination(PageNumberPagination):
    """Counts stop at selectors.CappedPaginator's cap, so a broad search stays fast."""

    django_paginator_class = selectors.CappedPaginator


class RepositorySerializer(serializers.ModelSerializer):
    # Never a stored value as is: a javascript: address from before the import check is "".
    html_url = serializers.CharField(
        source="safe_html_url", read_only=True, help_text="The repository's page on GitHub."
    )

    class Meta:
        model = Repository
        fields = [
            "id",
            "full_name",
            "html_url",
            "default_branch",
            "language",
            "stars",
            "description",
            "license",
            "topics",
            "task_count",
            "clone_status",
            "clone_error",
            "cloned_at",
        ]


class RepositoryListApi(ListAPIView):
    """The catalogue: `q`, `language`, `topic`, `license`, `min_stars`, `max_stars`, `sort`
    (stars, name, least_used), as on the picker page."""

    serializer_class = RepositorySerializer
    pagination_class = CappedPagination

    @extend_schema(parameters=[CatalogueQuerySerializer])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        form = validated(CatalogueFilterForm(self.request.query_params))
        return selectors.repository_list(filters=form.to_filter())


class RepositoryDetailApi(RetrieveAPIView):
    serializer_class = RepositorySerializer

    def get_object(self) -> Repository:
        return selectors.repository_get(pk=self.kwargs["pk"])


class CanClone(BasePermission):
    def has_permission(self, request, view) -> bool:
        return can_clone_repositories(request.user)


class RepositoryCloneApi(APIView):
    """Clone (or refresh) the repository in the background; poll its detail for the status."""

    permission_classes = [CanClone]

    @extend_schema(request=None, responses={202: RepositorySerializer})
    def post(self, request: Request, pk: int) -> Response:
        repository = selectors.repository_get(pk=pk)
        repository = repository_queue_clone(repository=repository)
        return Response(RepositorySerializer(repository).data, status=status.HTTP_202_ACCEPTED)


class RefsSerializer(serializers.Serializer):
    branches = serializers.ListField(child=serializers.CharField())
    tags = serializers.ListField(child=serializers.CharField())


class RepositoryRefsApi(APIView):
    @extend_schema(responses={200: RefsSerializer})
    def get(self, request: Request, pk: int) -> Response:
        refs = repository_refs(repository=selectors.repository_get(pk=pk))
        return Response(RefsSerializer(refs).data)


class TreeQuerySerializer(serializers.Serializer):
    ref = serializers.CharField(required=False, default="", allow_blank=True, max_length=255)
    path = serializers.CharField(required=False, default="", allow_blank=True, max_length=4096)


class TreeEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField()
    kind = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)


class TreeSerializer(serializers.Serializer):
    commit_sha = serializers.CharField()
    path = serializers.CharField()
    entries = TreeEntrySerializer(many=True, allow_null=True)
    content = serializers.CharField(allow_null=True)
    notice = serializers.CharField(allow_blank=True)


class RepositoryTreeApi(APIView):
    """A folder's entries or a file's text at a ref (pinned to its commit): `?ref=&path=`."""

    @extend_schema(parameters=[TreeQuerySerializer], responses={200: TreeSerializer})
    def get(self, request: Request, pk: int) -> Response:
        repository = selectors.repository_get(pk=pk)
        query = TreeQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        path = query.validated_data["path"].strip("/")
        try:
            sha = repository_resolve_commit(repository=repository, ref=query.validated_data["ref"])
            view = repository_browse(
                repository=repository,
                sha=sha,
                path=path,
                max_bytes=settings.MARLIN_BROWSE_MAX_FILE_BYTES,
            )
            content = None
            if view.entries is None and not view.notice and not view.symlink_target:
                content = repository_read_text(
                    repository=repository,
                    sha=sha,
                    path=path,
                    max_bytes=settings.MARLIN_BROWSE_MAX_FILE_BYTES,
                )
        except GitError as exc:
            raise NotFound(exc.message) from exc
        data = {
            "commit_sha": sha,
            "path": path,
            "entries": view.entries,
            "content": content if content is not None else view.symlink_target or None,
            "notice": view.notice,
        }
        return Response(TreeSerializer(data).data)


class RepositoryAdminSerializer(serializers.ModelSerializer):
    class Meta:
        model = Repository
        fields = ["id", "full_name", "is_enabled", "max_open_tasks"]
        read_only_fields = ["id", "full_name"]


class RepositoryAdminApi(UpdateAPIView):
    """Withdraw or re-enable a repository, or cap its open tasks (admins)."""

    queryset = Repository.objects.all()
    serializer_class = RepositoryAdminSerializer
    permission_classes = [ModelPermissions]
    http_method_names = ["patch", "options"]
