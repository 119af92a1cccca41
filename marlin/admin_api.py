"""Admins' management of people and their roles over the API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import PermissionDenied

from marlin.api import ModelPermissions
from marlin.roles import ROLE_PERMISSIONS, user_set_role

PRIVILEGE_FIELDS = {"is_staff", "is_superuser", "user_permissions", "groups", "password"}


class UserSerializer(serializers.ModelSerializer):
    role = serializers.ChoiceField(
        choices=[(r, r) for r in ROLE_PERMISSIONS], write_only=True, required=False
    )
    roles = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "is_active",
            "role",
            "roles",
        ]
        read_only_fields = ["id"]

    def get_roles(self, user) -> list[str]:
        return sorted(g.name for g in user.groups.all())

    def validate(self, attrs: dict) -> dict:
        # Privileges are never set here, not even ignored quietly: a client that sends them
        # is told that people are managed through their role.
        sent = sorted(set(self.initial_data) & PRIVILEGE_FIELDS)
        if sent:
            raise serializers.ValidationError(
                {name: ["Admins manage people through their role only."] for name in sent}
            )
        return attrs

    def create(self, validated_data: dict):
        role = validated_data.pop("role", None)
        user = get_user_model()(**validated_data)
        user.set_unusable_password()  # they set one through the password reset
        user.save()
        if role:
            user_set_role(user=user, role=role)
        return user

    def update(self, instance, validated_data: dict):
        role = validated_data.pop("role", None)
        user = super().update(instance, validated_data)
        if role:
            user_set_role(user=user, role=role)
        return user


class UserViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """People and their one role (contractor, reviewer or admin). No deletion: work and pay
    refer to people; deactivate them (`is_active`) instead."""

    queryset = get_user_model().objects.prefetch_related("groups").order_by("username")
    serializer_class = UserSerializer
    permission_classes = [ModelPermissions]

    def perform_update(self, serializer) -> None:
        if serializer.instance.is_superuser and not self.request.user.is_superuser:
            # A superuser's e-mail (password resets) or role would hand over the account.
            raise PermissionDenied("Only a superuser can change a superuser's account.")
        serializer.save()
