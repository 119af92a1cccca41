"""Admins' management of model endpoints and projects over the API (as in the Django admin).

Model validation (clean) runs on every write, so the API accepts exactly what the admin
forms accept. Permissions are the Django model permissions the admin role carries.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, viewsets

from marlin.api import ModelPermissions
from tasks.models import ModelEndpoint, Project


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
