"""Admin pages owned by marlin itself: API tokens, listable and revocable but never readable."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from marlin.tokens import AuthToken

# knox registers the token with its full digest as the first column and an editable form;
# ours shows only what identifies a token to a person and offers deletion (= revocation).
if admin.site.is_registered(AuthToken):
    admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["digest_prefix", "user", "created", "expiry"]
    list_select_related = ["user"]
    list_filter = ["created", "expiry"]
    search_fields = ["user__username"]
    ordering = ["-created"]
    # The key itself is never stored; the digest (a one-way hash) and knox's 15-character
    # lookup prefix are not shown beyond a few characters either.
    fields = ["digest_prefix", "user", "created", "expiry"]
    readonly_fields = fields

    @admin.display(description="digest (prefix)")
    def digest_prefix(self, token: AuthToken) -> str:
        return f"{token.digest[:8]}…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key is shown once, by `manage.py create_api_token USER`

    def has_change_permission(self, request: HttpRequest, obj: AuthToken | None = None) -> bool:
        return False
