"""Fill search_text/topics_text of rows written before Repository.save() derived them.

Rows made outside catalogue imports (the demo seed, the admin) were stored with an empty
search_text, so the catalogue search could never find them.
"""

from __future__ import annotations

from django.db import migrations

BATCH = 1000


# Frozen copies of Repository.search_text_for/topics_text_for: a migration must not follow
# later changes of the model's code.
def _search_text(full_name: str, description: str, topics: list[str]) -> str:
    return " ".join([full_name, description, *topics]).lower()


def _topics_text(topics: list[str]) -> str:
    return f" {' '.join(t.lower() for t in topics)} " if topics else ""


def backfill_search_text(apps, schema_editor) -> None:
    Repository = apps.get_model("repos", "Repository")
    stale = Repository.objects.filter(search_text="").only(
        "pk", "full_name", "description", "topics"
    )
    batch = []
    for repository in stale.iterator(chunk_size=BATCH):
        topics = repository.topics if isinstance(repository.topics, list) else []
        repository.search_text = _search_text(repository.full_name, repository.description, topics)
        repository.topics_text = _topics_text(topics)
        batch.append(repository)
        if len(batch) >= BATCH:
            Repository.objects.bulk_update(batch, ["search_text", "topics_text"])
            batch = []
    if batch:
        Repository.objects.bulk_update(batch, ["search_text", "topics_text"])


class Migration(migrations.Migration):
    dependencies = [
        ("repos", "0005_catalogue_imports"),
    ]

    operations = [
        migrations.RunPython(backfill_search_text, migrations.RunPython.noop, elidable=True),
    ]
