"""Real headless Chromium, driven by Playwright's sync API, against pytest-django's live server."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.signals import request_finished, request_started
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tasks.models import Task
from tests.tasks.helpers import create_task, generate_all

# Playwright's sync API keeps an event loop running in the main thread; without this Django
# refuses ORM calls made by the test ("You cannot call this from an async context").
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

BASE_DIR = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = BASE_DIR / "var" / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PASSWORD = "correct horse battery staple"  # what tests.factories.UserFactory sets
DEFAULT_TIMEOUT_MS = 15_000

expect.set_options(timeout=DEFAULT_TIMEOUT_MS)


class _RequestsInFlight:
    """The live server's requests still being handled, by the thread handling each. A page
    closed at the end of a test may leave one running (a heartbeat, a lazy diff); flushing
    the database under it deadlocks, so the teardown waits for them first. A thread that
    ended without the finished signal (a dropped connection) no longer counts, so one such
    request never makes every later test wait."""

    def __init__(self) -> None:
        self.threads: dict[int, threading.Thread] = {}
        self.changed = threading.Condition()

    def started(self, **kwargs) -> None:
        if threading.current_thread() is threading.main_thread():
            return  # the test's own client, not the live server
        with self.changed:
            self.threads[threading.get_ident()] = threading.current_thread()

    def finished(self, **kwargs) -> None:
        with self.changed:
            self.threads.pop(threading.get_ident(), None)
            self.changed.notify_all()

    def _busy(self) -> bool:
        for ident, thread in list(self.threads.items()):
            if not thread.is_alive():
                del self.threads[ident]
        return bool(self.threads) or any(_serving_connection(t) for t in threading.enumerate())

    def wait_idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self.changed:
            while self._busy() and time.monotonic() < deadline:
                self.changed.wait(min(0.2, max(0.0, deadline - time.monotonic())))


def _serving_connection(thread: threading.Thread) -> bool:
    """A live-server thread still holding a connection: it may be reading a request that
    has not reached Django's request_started yet, and would query a flushed database."""
    target = getattr(thread, "_target", None)  # socketserver names its handler thread's target
    return thread.is_alive() and getattr(target, "__name__", "") == "process_request_thread"


IN_FLIGHT = _RequestsInFlight()
request_started.connect(IN_FLIGHT.started, dispatch_uid="browser-tests-in-flight-start")
request_finished.connect(IN_FLIGHT.finished, dispatch_uid="browser-tests-in-flight-end")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Browser tests need Debian's Chromium at {CHROMIUM}, which is missing or not "
            "executable. Install it with `apt-get install chromium` (never `playwright install`).",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_context(
    browser: Browser, live_server, request: pytest.FixtureRequest
) -> Iterator[Callable[[], BrowserContext]]:
    """Make fresh browser contexts (one per person: separate cookies) for this test.

    On failure every open page is saved as a screenshot and an HTML file in var/test-artifacts/.
    """
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(base_url=live_server.url, accept_downloads=True)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make

    report = getattr(request.node, "rep_call", None)
    failed = report is not None and report.failed
    for c_index, context in enumerate(contexts):
        if failed:
            _save_artifacts(request.node.name, c_index, context)
        context.close()
    IN_FLIGHT.wait_idle(seconds=20)


def _save_artifacts(test_name: str, c_index: int, context: BrowserContext) -> None:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    for p_index, page in enumerate(context.pages):
        base = ARTIFACTS_DIR / f"{stem}-context{c_index}-page{p_index}"
        try:
            page.screenshot(path=f"{base}.png", full_page=True)
            Path(f"{base}.html").write_text(page.content())
            print(f"browser artifact: {base}.png ({page.url})")
        except Exception as exc:  # a broken page must not hide the test's own failure
            print(f"could not save browser artifact {base}: {exc}")


@pytest.fixture
def context(new_context: Callable[[], BrowserContext]) -> BrowserContext:
    return new_context()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def log_in(new_context: Callable[[], BrowserContext]) -> Callable[..., Page]:
    """Open a new browser context for `user` and log in through the /login/ form."""

    def do_log_in(user) -> Page:
        page = new_context().new_page()
        page.goto("/login/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("header .who")).to_have_text(user.get_username())
        return page

    return do_log_in


@pytest.fixture
def ready_task(ready_repository, project, contractor) -> Task:
    """Both candidates generated in-process, so no Celery worker is needed."""
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    assert task.status == Task.Status.AWAITING_PREFERENCE
    return task
