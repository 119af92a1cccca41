"""Issue 15: repositories made outside catalogue imports are found by the catalogue search."""

from __future__ import annotations

import importlib

from django.apps import apps
from django.urls import reverse

from marlin.management.commands.demo_setup import Command as DemoSetup
from repos.models import Repository
from tests.factories import RepositoryFactory

backfill = importlib.import_module("repos.migrations.0006_backfill_search_text")


def _search(client, query: str) -> str:
    response = client.get(reverse("repos:list"), {"q": query})
    assert response.status_code == 200
    return response.content.decode()


def test_a_repository_seeded_by_the_demo_is_found_by_part_of_its_name(
    client, contractor, git_server, tmp_path
):
    # The demo seed's own code path: update_or_create, not the import's bulk upsert.
    DemoSetup()._repositories(tmp_path, base_url=git_server.base_url)
    client.force_login(contractor)
    assert "marlin-demo/calc" in _search(client, "calc")
    assert "marlin-demo/calc" in _search(client, "CALCULATOR")  # its description, any case


def test_an_edited_description_is_searchable_even_when_saving_only_that_field(db):
    repository = RepositoryFactory(full_name="acme/anvil", description="Forges")
    repository.description = "Hammers zylophonic widgets"
    repository.topics = ["Metal"]
    repository.save(update_fields=["description", "topics"])
    repository.refresh_from_db()
    # Without the search columns in update_fields the row would keep its stale index text.
    assert "zylophonic" in repository.search_text
    assert repository.topics_text == " metal "


def test_the_migration_fills_rows_stored_with_an_empty_search_text(client, contractor):
    seeded = RepositoryFactory(full_name="marlin-demo/calc", description="A tiny calculator")
    tagged = RepositoryFactory(full_name="acme/tools", topics=["CLI"])
    kept = RepositoryFactory(full_name="acme/kept")
    # As the demo seed stored them before: .update() bypasses save(), like old rows.
    Repository.objects.filter(pk__in=[seeded.pk, tagged.pk]).update(search_text="", topics_text="")
    Repository.objects.filter(pk=kept.pk).update(search_text="indexed elsewhere")
    client.force_login(contractor)
    assert "marlin-demo/calc" not in _search(client, "calc")

    backfill.backfill_search_text(apps, None)

    assert "marlin-demo/calc" in _search(client, "calc")
    assert "acme/tools" in _search(client, "cli")
    tagged.refresh_from_db()
    assert tagged.topics_text == " cli "
    kept.refresh_from_db()
    assert kept.search_text == "indexed elsewhere"  # only empty rows are touched
