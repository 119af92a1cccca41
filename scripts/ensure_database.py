#!/usr/bin/env python3
"""Create the PostgreSQL database that DATABASE_URL names, if it does not exist yet.

    .venv/bin/python scripts/ensure_database.py

CI and fresh machines need the application database (management commands and the README's
snippets connect to it; pytest-django makes its own test_<name> beside it). The name, host,
port and user all come from DATABASE_URL, so a run pointed at another database never creates
or touches one it was not asked for. Other engines (SQLite) need nothing: it says so, exits 0.
"""

from __future__ import annotations

import os
import sys

import environ
import psycopg2
from psycopg2 import sql


def ensure_database(url: str) -> str:
    """Return what was done: 'created NAME', 'exists NAME' or 'not PostgreSQL'."""
    config = environ.Env.db_url_config(url)
    if not config["ENGINE"].endswith("postgresql"):
        return "not PostgreSQL"
    name = config["NAME"]
    if not name:
        raise SystemExit(f"DATABASE_URL names no database: {url.split('@')[-1]!r}")
    # Connect to the maintenance database: the target may not exist yet.
    connection = psycopg2.connect(
        dbname="postgres",
        user=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        host=config.get("HOST") or None,
        port=config.get("PORT") or None,
    )
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone():
                return f"exists {name}"
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return f"created {name}"
    finally:
        connection.close()


def main() -> int:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        print("DATABASE_URL is not set: nothing to create (the embedded SQLite default is used)")
        return 0
    print(ensure_database(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
