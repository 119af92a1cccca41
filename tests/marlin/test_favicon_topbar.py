"""Every page links an icon that exists, and browsers that ask for /favicon.ico get it."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib.staticfiles import finders
from django.urls import reverse

ICON_LINK = re.compile(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">')


def _icon_href(html: str) -> str:
    match = ICON_LINK.search(html)
    assert match, "the page links no icon"
    return match.group(1)


def test_favicon_ico_is_not_a_404_and_leads_to_the_icon(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].endswith("favicon.svg")
    # The redirect target is the static file the pages link.
    login_page = client.get(reverse("login")).content.decode()
    assert response["Location"] == _icon_href(login_page)


def test_the_linked_icon_exists_and_is_a_plain_svg(client, contractor):
    client.force_login(contractor)
    page = client.get(reverse("tasks:list"))
    assert page.status_code == 200
    assert _icon_href(page.content.decode()).endswith("favicon.svg")
    path = finders.find("favicon.svg")
    assert path, "static/favicon.svg is missing"
    svg = Path(path).read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<svg") and "</svg>" in svg
    # Hand-written and self-contained: nothing fetched from elsewhere, nothing that runs.
    assert "<script" not in svg and "href=" not in svg.replace('xmlns="http', "")


def test_the_content_security_policy_lets_the_icon_load(client, db):
    policy = client.get(reverse("login"))["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
    )
    sources = directives.get("img-src", directives.get("default-src"))
    assert "'self'" in sources
