"""The repository picker in a real browser: search a large catalogue, clone, browse, start a task."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from playwright.sync_api import expect

from repos.models import Repository
from repos.services import repository_cache_path, repository_import
from tasks.models import Task
from tests.repos.helpers import build_bare_repository

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CATALOGUE_SIZE = 10_000
LANGUAGES = ["Python", "Go", "Rust", "TypeScript"]
TARGET = "acme/widget-forge"
# A word no other catalogue row has, in name, description or topics.
DISTINCTIVE_WORD = "zylophonic"
TARGET_DESCRIPTION = f"Forges widgets with {DISTINCTIVE_WORD} precision."
RELEASE_BRANCH = "release/2.0"
ANVIL_MAIN = 'def strike(metal):\n    """Shape the metal once."""\n    return metal\n'
ANVIL_RELEASE = (
    'def strike(metal, times=2):\n    """Shape the metal again."""\n    return metal * times\n'
)
CLONE_TIMEOUT_MS = 60_000
GENERATION_TIMEOUT_MS = 60_000
TITLE = "Let strike take a count"
PROMPT = "forge.anvil.strike should accept how many times to strike; add a test for it."


def _github_object(full_name: str, **extra) -> dict:
    """A repository object as the GitHub REST API returns it (the fields the import reads)."""
    return {
        "full_name": full_name,
        "html_url": f"https://github.com/{full_name}",
        "clone_url": f"https://github.com/{full_name}.git",
        "default_branch": "main",
        "language": "Go",
        "stargazers_count": 10,
        "description": "A repository",
        "license": {"key": "mit", "spdx_id": "MIT"},
        "topics": ["tools"],
        "archived": False,
        "size": 100,
        "pushed_at": "2026-01-01T12:00:00Z",
        **extra,
    }


def _catalogue_jsonl(target_clone_url: str) -> bytes:
    rows = [
        _github_object(
            TARGET,
            clone_url=target_clone_url,
            language="Python",
            stargazers_count=42,
            description=TARGET_DESCRIPTION,
            topics=["widgets", "metalwork"],
        )
    ]
    for n in range(1, CATALOGUE_SIZE):
        rows.append(
            _github_object(
                f"owner{n % 97}/project-{n}",
                language=LANGUAGES[n % len(LANGUAGES)],
                stargazers_count=n,
                description=f"Synthetic project number {n}",
                topics=["widgets"] if n % 3 == 0 else ["tools"],
            )
        )
    return "\n".join(json.dumps(row) for row in rows).encode()


def test_a_contractor_finds_a_repository_among_10000_clones_browses_it_and_starts_a_task_on_a_chosen_ref(
    celery_worker_process,
    log_in,
    git_server,
    repo_cache_dir,
    project,
    contractor,
):
    # The catalogue: 10,000 rows, one of which is served by the loopback git server.
    clone_url = f"{git_server.base_url}/{TARGET}.git"
    report = repository_import(content=_catalogue_jsonl(clone_url), filename="catalogue.jsonl")
    assert (report.created, report.rejected) == (CATALOGUE_SIZE, [])
    python_count = Repository.objects.filter(language="Python").count()
    assert 1 < python_count < CATALOGUE_SIZE
    shas = build_bare_repository(
        git_server.root / "acme" / "widget-forge.git",
        {
            "README.md": "# widget-forge\n\nForges widgets.\n",
            "pyproject.toml": '[project]\nname = "widget-forge"\n',
            "forge/__init__.py": "",
            "forge/anvil.py": ANVIL_MAIN,
            "docs/guide.md": "# Guide\n\nStrike while the iron is hot.\n",
        },
        branches={RELEASE_BRANCH: {"forge/anvil.py": ANVIL_RELEASE}},
        tags=["v1.0"],
    )
    assert shas[RELEASE_BRANCH] != shas["main"]
    target = Repository.objects.get(full_name=TARGET)
    assert target.clone_url == clone_url
    shutil.rmtree(repository_cache_path(target), ignore_errors=True)

    # 1. The picker: the whole catalogue, narrowed by a filter, then by a live search.
    carol = log_in(contractor)
    carol.goto("/repos/")
    result_count = carol.locator("#result-count")
    expect(result_count).to_have_text(f"{CATALOGUE_SIZE:,} repositories")

    carol.locator("#id_language").select_option("Python")
    expect(result_count).to_have_text(f"{python_count:,} repositories")
    expect(carol).to_have_url(re.compile(r"[?&]language=Python(&|$)"))

    # Typed key by key, as a person would: htmx waits for 300 ms of quiet, then searches.
    carol.locator("#id_q").press_sequentially(DISTINCTIVE_WORD, delay=30)
    expect(result_count).to_have_text("1 repository")
    expect(carol).to_have_url(re.compile(rf"[?&]q={DISTINCTIVE_WORD}(&|$)"))
    results = carol.locator("section#results")
    expect(results.locator("tbody tr")).to_have_count(1)
    expect(results).to_contain_text(TARGET_DESCRIPTION)

    # A topic filter the target has keeps it.
    carol.locator("#id_topic").fill("widgets")
    expect(carol).to_have_url(re.compile(r"[?&]topic=widgets(&|$)"))
    expect(result_count).to_have_text("1 repository")
    results.get_by_role("link", name=TARGET, exact=True).click()

    # 2. The clone: htmx polls the status until the worker has cloned it.
    expect(carol).to_have_url(re.compile(rf"/repos/{target.pk}/$"))
    expect(carol.get_by_role("heading", name=TARGET)).to_be_visible()
    clone_status = carol.locator("#clone-status strong.status")
    expect(clone_status).to_have_attribute("data-status", "NOT_CLONED")
    carol.get_by_role("button", name="Clone", exact=True).click()
    expect(clone_status).to_have_attribute("data-status", "READY", timeout=CLONE_TIMEOUT_MS)
    expect(clone_status).to_have_text("Ready")
    carol.get_by_role("link", name="Browse files").click()

    # 3. Browsing: the default branch's head, folders first.
    expect(carol).to_have_url(re.compile(rf"/repos/{target.pk}/browse/{shas['main']}/$"))
    expect(carol.locator("#browse-sha")).to_have_text(shas["main"])
    tree = carol.locator("table.tree")
    expect(tree.locator("tbody tr td:first-child")).to_have_text(
        ["docs/", "forge/", "pyproject.toml", "README.md"]
    )
    expect(tree.locator("tbody tr.entry-dir")).to_have_count(2)
    switcher = carol.locator("#browse-ref")
    expect(switcher.locator("option")).to_have_count(3)  # main, release/2.0, v1.0
    expect(switcher).to_have_value("main")
    tree.get_by_role("link", name="forge/", exact=True).click()
    expect(carol).to_have_url(re.compile(rf"/browse/{shas['main']}/forge$"))
    expect(carol.get_by_role("navigation", name="Path")).to_contain_text("forge")
    expect(tree.locator("tbody tr td:first-child")).to_have_text(["__init__.py", "anvil.py"])
    tree.get_by_role("link", name="anvil.py", exact=True).click()

    # The file, highlighted, with numbered lines that link to themselves.
    expect(carol).to_have_url(re.compile(rf"/browse/{shas['main']}/forge/anvil\.py$"))
    source = carol.locator("section.file .source")
    expect(carol.locator("section.file h2")).to_contain_text("forge/anvil.py")
    expect(source.locator('td.linenos a[href="#L-1"]')).to_have_text("1")
    expect(source.locator('td.linenos a[href="#L-3"]')).to_have_text("3")
    expect(source.locator("td.code a#L-1")).to_have_count(1)
    expect(source.locator("td.code span.k").first).to_have_text("def")
    expect(source.locator("td.code span.nf")).to_have_text("strike")
    expect(source.locator("td.code")).to_contain_text("Shape the metal once.")

    # 4. The ref switcher pins the branch's head by its sha, stays on the file the branch
    # also has, and shows the branch as chosen.
    switcher.select_option(RELEASE_BRANCH)
    carol.get_by_role("button", name="Switch", exact=True).click()
    release_sha = shas[RELEASE_BRANCH]
    expect(carol).to_have_url(
        re.compile(rf"/{target.pk}/browse/{release_sha}/forge/anvil\.py\?ref=release%2F2\.0$")
    )
    expect(carol.locator("#browse-sha")).to_have_text(release_sha)
    expect(switcher).to_have_value(RELEASE_BRANCH)
    expect(source.locator("td.code")).to_contain_text("Shape the metal again.")
    expect(source.locator("td.code")).to_contain_text("return metal * times")
    expect(source.locator("td.code")).not_to_contain_text("Shape the metal once.")

    # 5. A task at that commit: the form comes prefilled with the repository and the sha.
    carol.get_by_role("link", name="Start a task at this commit").click()
    expect(carol.get_by_role("heading", name="New task")).to_be_visible()
    expect(carol.get_by_label("Repository")).to_have_value(str(target.pk))
    expect(carol.get_by_label("Repository").locator("option:checked")).to_have_text(TARGET)
    expect(carol.get_by_label("Branch, tag or commit")).to_have_value(release_sha)
    carol.get_by_label("Project").select_option(label=project.name)
    carol.get_by_label("Title").fill(TITLE)
    carol.get_by_label("Kind").select_option(label="Feature")
    carol.get_by_label("Prompt").fill(PROMPT)
    carol.get_by_role("button", name="Create task and generate").click()

    expect(carol).to_have_url(re.compile(r"/tasks/\d+/$"))
    task = Task.objects.get(contractor=contractor)
    assert carol.url.endswith(f"/tasks/{task.pk}/")
    expect(carol.get_by_role("heading", name=f"#{task.pk} {TITLE}")).to_be_visible()
    expect(carol.locator("p.meta")).to_contain_text(f"{TARGET} at {release_sha[:12]}")

    # 6. The real worker generates both candidates against the pinned commit.
    expect(carol.locator("article.candidate")).to_have_count(2)
    for slot in ("A", "B"):
        status = carol.locator(f'article.candidate[data-slot="{slot}"] span.status')
        expect(status).to_have_attribute("data-status", "SUCCEEDED", timeout=GENERATION_TIMEOUT_MS)
        expect(status).to_have_text("Ready")
    expect(carol.locator("#task-status")).to_have_attribute(
        "data-status", "AWAITING_PREFERENCE", timeout=GENERATION_TIMEOUT_MS
    )

    task.refresh_from_db()
    assert task.repository_id == target.pk
    assert task.commit_sha == release_sha
    assert task.base_ref == release_sha
