"""What the database behind the default connection can do.

Marlin runs on PostgreSQL in production and on SQLite in the embedded single-user default
(`python3 scripts/dev.py run` without DATABASE_URL). Set-based statements written for
PostgreSQL (JSON operators, FILTER, data-modifying CTEs, LOCK TABLE, PREPARE) ask here
first and take a portable path otherwise.
"""

from django.db import connection


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"
