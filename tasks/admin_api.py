"""Admins' management of model endpoints, projects and check recipes over the API (as in the
Django admin).

Model validation (clean) runs on every write, so the API accepts exactly what the admin
forms accept. Permissions are the Django model permissions the admin role carries.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, viewsets

from marlin.api import ModelPermissions
from tasks import evidence_sandbox
from tasks.models import CheckRecipe, ModelEndpoint, Project


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
            "endpoint_a",
            "endpoint_b",
            "is_active",
        ]


class ModelEndpointViewSet(viewsets.ModelViewSet):
    """Model endpoints (admins). API keys are never stored: `api_key_env` names the variable."""

    queryset = ModelEndpoint.objects.order_by("name")
    serializer_class = ModelEndpointSerializer
    permission_classes = [ModelPermissions]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]


class ProjectAdminViewSet(viewsets.ModelViewSet):
    """Projects with their rubric, pay, turn and round limits and the two endpoints (admins)."""

    queryset = Project.objects.select_related("endpoint_a", "endpoint_b").order_by("name")
    serializer_class = ProjectAdminSerializer
    permission_classes = [ModelPermissions]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]


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
        try:
            instance.validate_constraints()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                {"non_field_errors": ["This repository already has a recipe for that scope."]}
            ) from exc
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
