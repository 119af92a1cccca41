"""Moving the test database to a migration and back, for the tests of a data migration."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate_to(targets):
    """The database at `targets` ([(app, migration)]); the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def back_to_latest():
    """Every app at its latest migration again afterwards: migrating tasks back unapplies the
    later migrations of every app that depends on it, and the tests after this one need
    them (a later migration of tasks or reviews would otherwise be missing for the rest of
    the run)."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
