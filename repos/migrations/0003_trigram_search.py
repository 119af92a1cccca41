from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

# Trigram GIN indexes make LIKE '%term%' on the catalogue fast on PostgreSQL; other
# databases (the embedded SQLite default) scan, which is fine at demo sizes.
CREATE = [
    "CREATE INDEX IF NOT EXISTS repo_search_trgm ON repos_repository "
    "USING gin (search_text gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS repo_topics_trgm ON repos_repository "
    "USING gin (topics_text gin_trgm_ops)",
]
DROP = ["DROP INDEX IF EXISTS repo_search_trgm", "DROP INDEX IF EXISTS repo_topics_trgm"]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("repos", "0002_catalogue_fields")]

    operations = [
        TrigramExtension(),
        migrations.RunPython(_run(CREATE), _run(DROP)),
    ]
