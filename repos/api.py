from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_serializer
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
from marlin.permissions import can_clone_repositories
from repos import selectors
from repos.catalogue_imports import (
    ImportTooLarge,
    catalogue_import_start,
    max_import_bytes,
    too_large_message,
)
from repos.forms import CatalogueFilterForm
from repos.git_client import GitError
from repos.models import CatalogueImport, Repository
from repos.services import (
    repository_browse,
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


class CatalogueImportSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="Poll this for the import's progress.")
    rows_imported = serializers.IntegerField(read_only=True)
    percent = serializers.IntegerField(read_only=True, help_text="Of the file's bytes read.")
    rejections = serializers.SerializerMethodField(
        help_text="The first rejected rows with their line and reason (rows_rejected counts all)."
    )

    class Meta:
        model = CatalogueImport
        fields = [
            "id", "url", "filename", "status", "size_bytes", "bytes_read", "percent", "rows_read",
            "rows_imported", "rows_created", "rows_updated", "rows_rejected", "rejections",
            "error", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_url(self, job: CatalogueImport) -> str:
        return reverse("api-repos-import-job", args=[job.pk])

    def get_rejections(self, job: CatalogueImport) -> list[dict]:
        return [{"line": line, "reason": reason} for line, reason in job.rejections]


class RepositoryImportApi(APIView):
    """Upload a catalogue file (admins): 202 with the import to poll; a worker imports it.

    400 (nothing stored) when the file's head cannot be read or every row checked is bad;
    413 above MARLIN_IMPORT_MAX_MB.
    """

    parser_classes = [MultiPartParser]
    permission_classes = [CanImportRepositories]

    @extend_schema_serializer(component_name="CatalogueUpload")
    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(
            help_text="GitHub API repository objects (JSON array or JSONL) or a CSV."
        )

    def initial(self, request: Request, *args, **kwargs) -> None:
        # Refuse an oversized body by its declared length, before a byte of it is parsed.
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if request.method == "POST" and length > max_import_bytes() + 64 * 1024:
            raise ImportTooLarge(too_large_message("The upload", length))
        super().initial(request, *args, **kwargs)

    @extend_schema(request=InputSerializer, responses={202: CatalogueImportSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        job = catalogue_import_start(by=request.user, upload=upload, filename=upload.name)
        return Response(CatalogueImportSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class RepositoryImportDetailApi(APIView):
    """One catalogue import's status and progress (admins)."""

    permission_classes = [CanImportRepositories]

    @extend_schema(responses={200: CatalogueImportSerializer})
    def get(self, request: Request, pk: int) -> Response:
        job = CatalogueImport.objects.filter(pk=pk).first()
        if job is None:
            raise NotFound("No such import.")
        return Response(CatalogueImportSerializer(job).data)


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
    page = serializers.IntegerField(required=False, default=1, min_value=1, max_value=999_999)


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
    page = serializers.IntegerField(help_text="For a folder: this page of its entries.")
    page_count = serializers.IntegerField()
    total_entries = serializers.IntegerField(help_text="Entries in the whole folder.")
    next = serializers.CharField(allow_null=True, help_text="The folder's next page, if any.")
    previous = serializers.CharField(allow_null=True)


class RepositoryTreeApi(APIView):
    """A folder's entries (`page` by page, 500 each) or a file's text at a ref (pinned to its
    commit): `?ref=&path=&page=`."""

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
                page=query.validated_data["page"],
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

        def page_url(number: int | None) -> str | None:
            if number is None:
                return None
            params = request.query_params.copy()
            params["page"] = str(number)
            return request.build_absolute_uri(f"?{params.urlencode()}")

        data = {
            "commit_sha": sha,
            "path": path,
            "entries": view.entries,
            "content": content if content is not None else view.symlink_target or None,
            "notice": view.notice,
            "page": view.page,
            "page_count": view.page_count,
            "total_entries": view.total_entries,
            "next": page_url(view.next_page),
            "previous": page_url(view.previous_page),
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
