"""Admins' management of model endpoints, projects and check recipes over the API (as in the
Django admin).

Model validation (clean) runs on every write, so the API accepts exactly what the admin
forms accept. Permissions are the Django model permissions the admin role carries.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, viewsets

from marlin.api import ModelPermissions
from tasks import evidence_sandbox, pool
from tasks.models import CheckRecipe, ModelEndpoint, Project, ProjectEndpoint


class CleanedModelSerializer(serializers.ModelSerializer):
    """Runs the model's own clean(): one set of rules for the admin pages and the API."""

    def validate(self, attrs: dict) -> dict:
        instance = self.instance or self.Meta.model()
        for name, value in attrs.items():
            setattr(instance, name, value)
        try:
            instance.full_clean(validate_unique=False, validate_constraints=False)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs


def unique_or_refuse(instance, message: str) -> None:
    """The database's constraints checked before the write, so a clash is a 400 with
    `message` rather than an IntegrityError."""
    try:
        instance.validate_constraints()
    except DjangoValidationError as exc:
        raise serializers.ValidationError({"non_field_errors": [message]}) from exc


class ModelEndpointSerializer(CleanedModelSerializer):
    class Meta:
        model = ModelEndpoint
        fields = [
            "id",
            "name",
            "provider",
            "model_id",
            "base_url",
            "parameters",
            "api_key_env",
            "max_concurrency",
            "is_enabled",
        ]


class ProjectAdminSerializer(CleanedModelSerializer):
    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "guidelines",
            "rubric_axes",
            "system_prompt",
            "pay_per_task",
            "hourly_rate_cap",
            "min_justification_chars",
            "min_turns",
            "max_turns",
            "claim_minutes",
            "max_rounds",
            "pair_sampling",
            "overlap_percent",
            "gold_percent",
            "audit_percent",
            "pay_per_judging_task",
            "is_active",
            "pool",
            "pool_summary",
        ]

    pool = serializers.SerializerMethodField(
        help_text="The project's endpoints with what each does now; change them at "
        "/api/admin/project-endpoints/."
    )

    pool_summary = serializers.SerializerMethodField(
        help_text="What the pool does now, e.g. “3 drawing tasks, 1 retired”."
    )

    def get_pool_summary(self, project: Project) -> str:
        return pool.pool_summary(pool.pool_entries(project))

    def get_pool(self, project: Project) -> list[dict]:
        return [
            {
                "endpoint": e.endpoint.pk,
                "name": e.endpoint.name,
                "weight": e.weight,
                "is_retired": e.is_retired,
                "state": e.state,
            }
            for e in pool.pool_entries(project)
        ]


class ProjectEndpointSerializer(CleanedModelSerializer):
    """One endpoint in one project's pool. Retire it with is_enabled false; rows are never
    deleted, so the leaderboard keeps the endpoint's record."""

    class Meta:
        model = ProjectEndpoint
        fields = ["id", "project", "endpoint", "weight", "is_enabled"]
        # The database's constraint is checked in validate(), with its own message.
        validators: list = []

    def validate(self, attrs: dict) -> dict:
        # Checked before the model's clean, which copies attrs onto the instance.
        if self.instance is not None and any(
            getattr(self.instance, f"{name}_id") != attrs[name].pk
            for name in ("project", "endpoint")
            if name in attrs
        ):
            raise serializers.ValidationError(
                {"non_field_errors": ["A pool row keeps its project and endpoint; add a new row."]}
            )
        attrs = super().validate(attrs)
        unique_or_refuse(
            self.instance or ProjectEndpoint(**attrs),
            "This endpoint is already in the project's pool.",
        )
        return attrs


class ModelEndpointViewSet(viewsets.ModelViewSet):
    """Model endpoints (admins). API keys are never stored: `api_key_env` names the variable."""

    queryset = ModelEndpoint.objects.order_by("name")
    serializer_class = ModelEndpointSerializer
    permission_classes = [ModelPermissions]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]


class ProjectAdminViewSet(viewsets.ModelViewSet):
    """Projects with their rubric, pay, turn and round limits, pair sampling and pool (admins)."""

    queryset = Project.objects.order_by("name")
    serializer_class = ProjectAdminSerializer
    permission_classes = [ModelPermissions]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]


class ProjectEndpointViewSet(viewsets.ModelViewSet):
    """Endpoints in projects' pools (admins): add one mid-project, reweigh or retire it.
    A new row takes part in the next task's draw."""

    queryset = ProjectEndpoint.objects.select_related("project", "endpoint").order_by(
        "project__name", "created_at", "pk"
    )
    serializer_class = ProjectEndpointSerializer
    permission_classes = [ModelPermissions]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def get_queryset(self):
        rows = super().get_queryset()
        project = self.request.query_params.get("project", "")
        return rows.filter(project_id=int(project)) if project.isdigit() else rows


class CheckRecipeSerializer(CleanedModelSerializer):
    """A recipe, checked by CheckRecipe.clean, and against the one-recipe-per-repository (and
    per project) rule, which would otherwise surface as a database error."""

    evidence_unavailable = serializers.SerializerMethodField(
        help_text="Why no check can run on this server (bubblewrap missing, switched off), "
        "or null when checks can run."
    )

    class Meta:
        model = CheckRecipe
        fields = [
            "id",
            "repository",
            "project",
            "setup_commands",
            "setup_timeout_seconds",
            "checks",
            "acceptance_command",
            "is_enabled",
            "evidence_unavailable",
        ]
        # The database's constraints are checked in validate(), with their own message.
        validators: list = []

    def get_evidence_unavailable(self, recipe: CheckRecipe) -> str | None:
        return evidence_sandbox.availability()

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        instance = self.instance or CheckRecipe()
        for name, value in attrs.items():
            setattr(instance, name, value)
        unique_or_refuse(instance, "This repository already has a recipe for that scope.")
        return attrs


class CheckRecipeViewSet(viewsets.ModelViewSet):
    """Check recipes per repository, optionally per project (admins). Each says whether
    evidence can run on this server at all."""

    queryset = CheckRecipe.objects.select_related("repository", "project").order_by(
        "repository__full_name", "project__name", "pk"
    )
    serializer_class = CheckRecipeSerializer
    permission_classes = [ModelPermissions]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
