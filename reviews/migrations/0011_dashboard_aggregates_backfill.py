"""Backfill the dashboard aggregates from the judgements, reviews, audits and judging tasks
already stored.

Calls the app's rebuild (set-based SQL over the tables as they are at this migration): if a
later migration changes what the aggregates count, it runs the rebuild again itself.
"""

from django.db import migrations


def backfill(apps, schema_editor) -> None:
    from reviews.aggregates import aggregates_rebuild

    aggregates_rebuild()


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0010_dashboard_day_counts"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
