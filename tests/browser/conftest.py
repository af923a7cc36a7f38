"""Real-browser tests: Debian's chromium, driven by Playwright, against pytest-django's live server.

One browser for all of them, a fresh context (cookies, storage) per test. The data is
committed (see `transactional_db` below) so the live server's threads see what a test creates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from .authenticator import webauthn_site, webauthn_site_expecting  # noqa: F401 (fixtures)

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download does not work here
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def transactional_db(committed: None) -> Iterator[None]:
    """What pytest-django's `live_server` asks for, here as committed data without a flush.

    The live server answers from its own threads and connections, so the data must be
    committed; pytest-django's own `transactional_db` would then flush every table, which the
    append-only audit tables refuse by design (TRUNCATE). Each test makes its own uniquely
    named tenants instead, and the test database is dropped at the end of the run.
    """
    yield


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless chromium for all the browser tests, closed once they are done.

    Package scope rather than session: Playwright (and the lifted check below) end with this
    package, so the tests that run after it never share a thread with its event loop.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: scripts/services.sh (run by `make test`) installs it")
    # Playwright's sync API keeps an asyncio event loop running in this thread for as long as
    # it is started, and Django refuses ORM calls from a thread with a running loop
    # (SynchronousOnlyOperation). The tests' ORM work is ordinary blocking code that never
    # runs inside that loop, so Django's check is lifted exactly while Playwright is up.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser: Browser, live_server) -> Iterator[Callable[..., Page]]:
    """`new_page(**options)` opens a page in a fresh context (a separate person's browser);
    the options go to Playwright's `new_context` (`java_script_enabled=False` …)."""
    contexts: list[BrowserContext] = []

    def open_page(**options: Any) -> Page:
        defaults = {"viewport": VIEWPORT, "locale": "en-US", "timezone_id": "UTC"}
        context = browser.new_context(base_url=live_server.url, **{**defaults, **options})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A page in a fresh browser context."""
    return new_page()


@pytest.fixture
def page_without_js(new_page: Callable[..., Page]) -> Page:
    """A page in a fresh context with JavaScript off: htmx never loads, forms post plainly."""
    return new_page(java_script_enabled=False)
