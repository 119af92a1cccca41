from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from marlin.tokens import api_token_create


class Command(BaseCommand):
    help = (
        "Create an API token for USER and print it. It is shown this once: only its digest "
        "is stored. Use it as `Authorization: Token <key>`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist as exc:
            raise CommandError(f"No user {username!r}.") from exc
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive.")
        token, key = api_token_create(user=user)
        self.stdout.write(key)
        expiry = token.expiry.isoformat() if token.expiry else "never"
        self.stderr.write(f"Token for {username}, expires {expiry}. It will not be shown again.")
