from django.apps import AppConfig


class MarlinConfig(AppConfig):
    name = "marlin"
    verbose_name = "Marlin"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from marlin import roles

        # A flush (TransactionTestCase, `manage.py flush`) empties auth_group; the groups are
        # part of the schema's contract, so they are put back whenever migrate/flush finishes.
        post_migrate.connect(roles.on_post_migrate, sender=self)
