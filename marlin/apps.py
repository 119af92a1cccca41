from django.apps import AppConfig


class MarlinConfig(AppConfig):
    name = "marlin"
    verbose_name = "Marlin"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_migrate, pre_save

        from marlin import roles, tokens, user_admin  # noqa: F401 (registers the people admin)

        # A flush (TransactionTestCase, `manage.py flush`) empties auth_group; the groups are
        # part of the schema's contract, so they are put back whenever migrate/flush finishes.
        post_migrate.connect(roles.on_post_migrate, sender=self)
        # A changed password revokes the user's API tokens, whichever path changed it
        # (tokens.on_user_pre_save says why this one is a receiver).
        pre_save.connect(tokens.on_user_pre_save, sender=get_user_model())
