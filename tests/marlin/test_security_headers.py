"""Every answer to a signed-in user carries a strict Content-Security-Policy and is never cached.

Walks every URL pattern of the project (like tests/test_api_authorization.py walks the API)
as a signed-in user of each role. Routes with parameters get a seeded repository's id, so
some pages render and the rest are 404s (or 405s, or redirects): those are answers to a
signed-in user too, and must carry the same headers. The API schema is for signed-in users.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.exceptions import NoReverseMatch
from django.urls.resolvers import RoutePattern

from tests.factories import RepositoryFactory

PERSONAS = ("contractor", "reviewer", "admin_user", "outsider")
# Not a route, so it exercises the 404 page (and the admin's catch-all view).
MISSING = ["/no-such-page/", "/admin/no-such-page/", "/api/no-such-endpoint/"]


def named_routes(
    patterns=None, namespace: str = "", prefix: str = ""
) -> Iterator[tuple[str, str, list[str]]]:
    """(view name with namespace, route text, parameter names) of every named URL pattern."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from named_routes(entry.url_patterns, inner, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.name:
            if isinstance(entry.pattern, RoutePattern):
                params = list(entry.pattern.converters)
            else:
                params = list(entry.pattern.regex.groupindex)
            yield f"{namespace}{entry.name}", prefix + str(entry.pattern), params


def url_for(name: str, params: list[str], pk: int) -> str:
    # Parameters with a shape: an installed app's label (the admin's per-app index), a sha.
    values = {"app_label": "repos", "sha": "0" * 40, "path": "README.md"}
    kwargs = {p: values.get(p, pk) for p in params}
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return reverse(name, kwargs={p: str(v) for p, v in kwargs.items()})


def header_problems(response) -> list[str]:
    problems = []
    policy = response.get("Content-Security-Policy", "")
    script_src = re.search(r"(?:^|;)\s*script-src ([^;]*)", policy)
    if not policy:
        problems.append("no Content-Security-Policy")
    elif not script_src or "'unsafe-inline'" in script_src.group(1):
        problems.append(f"script-src missing or allows inline code: {policy}")
    elif "default-src 'self'" not in policy or "object-src 'none'" not in policy:
        problems.append(f"policy not strict: {policy}")
    cache = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    if not {"private", "no-store"} <= cache:
        problems.append(f"Cache-Control is {response.get('Cache-Control')!r}")
    return problems


def test_the_walk_sees_every_kind_of_route():
    names = {name for name, _route, _params in named_routes()}
    # A walk that silently found nothing would pass: check it reaches each part of the site.
    assert {"home", "login", "api-schema", "api-docs", "api-tasks", "admin:index"} <= names
    assert {"tasks:list", "repos:list", "reviews:queue", "admin:repos_repository_change"} <= names
    assert len(names) > 60


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_route_carries_csp_and_no_store_for_a_signed_in_user(db, request, persona):
    user = request.getfixturevalue(persona)
    repository = RepositoryFactory(full_name="octo/headers")
    client = Client()
    client.force_login(user)
    urls = [url_for(name, params, repository.pk) for name, _route, params in named_routes()]
    statuses: set[int] = set()
    failures = {}
    for url in [*urls, *MISSING]:
        response = client.get(url)
        statuses.add(response.status_code)
        if problems := header_problems(response):
            failures[f"{url} ({response.status_code})"] = problems
        if response.streaming:  # a file download: read it, so its file is closed
            b"".join(response.streaming_content)
    assert not failures, failures
    # The walk met real pages and error pages alike.
    assert {200, 404} <= statuses


def test_an_api_answer_to_a_token_request_is_never_cached(db):
    # Refused credentials still mean a person's client: nothing of the answer may be kept.
    response = Client().get(reverse("api-tasks"), HTTP_AUTHORIZATION="Token not-a-key")
    assert response.status_code == 401
    assert header_problems(response) == []


def test_an_inline_script_gets_the_nonce_of_the_policy(rf):
    from csp.middleware import CSPMiddleware
    from django.http import HttpResponse
    from django.template import Context, Template

    def view(request):
        html = Template('<script nonce="{{ request.csp_nonce }}">go()</script>').render(
            Context({"request": request})
        )
        return HttpResponse(html)

    request = rf.get("/")
    response = CSPMiddleware(view)(request)
    nonce = re.search(r'nonce="([^"]+)"', response.content.decode()).group(1)
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]


def test_anonymous_pages_keep_the_policy(db):
    response = Client().get(reverse("login"))
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("name", ["api-schema", "api-docs", "api-redoc"])
def test_the_schema_and_docs_are_for_signed_in_users_only(client, contractor, name):
    response = client.get(reverse(name))
    assert response.status_code == 401
    assert b"/api/admin/" not in response.content
    client.force_login(contractor)
    assert client.get(reverse(name)).status_code == 200


def test_the_swagger_page_runs_no_inline_script(client, contractor):
    client.force_login(contractor)
    page = client.get(reverse("api-docs")).content.decode()
    assert "<script>" not in page  # every script has a src: script-src needs no exception
    script = re.search(r'<script src="([^"]*script=[^"]*)"', page).group(1)
    setup = client.get(script.replace("&amp;", "&"))
    assert setup.status_code == 200 and b"SwaggerUIBundle" in setup.content
