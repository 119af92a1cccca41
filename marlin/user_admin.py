"""People in the Django admin: admins manage them through roles, never through privileges.

The admin role holds auth.change_user so it can add people and give them a role. Django's own
UserAdmin would also let it tick "Superuser status", grant single permissions or set another
person's password, and so make itself (or anyone) a superuser. Here only a superuser sees
those fields; everyone else edits names, e-mail, active status and the one role group, and
cannot change a superuser's account at all.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from marlin.roles import ADMIN
from reviews.quality_flags import contractor_recent_flags

User = get_user_model()
_PRIVILEGES = ("is_staff", "is_superuser", "user_permissions")


class RoleUserAdmin(UserAdmin):
    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None:
            # Effort and bias flags (issue 18): for admins only, never shown to the contractor.
            fieldsets = [*fieldsets, ("Quality flags", {"fields": ["quality_flags"]})]
        if request.user.is_superuser or obj is None:
            return fieldsets
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f not in _PRIVILEGES]})
            for name, opts in fieldsets
        ]

    @admin.display(description="Recent flags")
    def quality_flags(self, obj) -> str:
        flags = list(contractor_recent_flags(contractor_id=obj.pk))
        if not flags:
            return "None"
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td><a href="{}">task #{}</a> round {}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    f"{timezone.localtime(flag.created_at):%Y-%m-%d %H:%M}",
                    reverse("reviews:detail", args=[flag.submission.task_id]),
                    flag.submission.task_id,
                    flag.submission.round,
                    flag.get_kind_display(),
                    flag.detail,
                )
                for flag in flags
            ),
        )
        return format_html(
            '<table class="quality-flags"><thead><tr><th>When</th><th>Submission</th>'
            "<th>Flag</th><th>Detail</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def get_readonly_fields(self, request, obj=None):
        readonly = [*super().get_readonly_fields(request, obj), "quality_flags"]
        if not request.user.is_superuser:
            # Also refused if posted by hand: a field missing from the form is never saved.
            readonly += [f for f in _PRIVILEGES if f not in readonly]
        return readonly

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False  # their e-mail or password would hand over the account
        return super().has_change_permission(request, obj)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        user = form.instance
        if not request.user.is_superuser and not user.is_superuser:
            # Staff status follows the admin role, as marlin.roles.user_set_role sets it.
            is_admin = user.groups.filter(name=ADMIN).exists()
            if user.is_staff != is_admin:
                User.objects.filter(pk=user.pk).update(is_staff=is_admin)


admin.site.unregister(User)
admin.site.register(User, RoleUserAdmin)
