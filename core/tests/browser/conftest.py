"""Real-browser tests: Playwright driving Debian's Chromium.

The browser is never downloaded: tests use /usr/bin/chromium (or
AGIRA_CHROMIUM) and are skipped, saying why, where it is not installed.
Screenshots go to test-artifacts/ (ignored by git).
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("AGIRA_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"

# Playwright's sync API runs an event loop in this thread; the test's own ORM
# calls (fixtures, assertions) are synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _chromium_missing() -> str:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)) and not shutil.which(
        CHROMIUM
    ):
        return f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium)"
    return ""


@pytest.fixture(scope="session")
def browser():
    reason = _chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def logged_in_page(page, live_server, transactional_db):
    from core.tests import factories
    from core.tests.factories import make_user

    person = make_user("browser", password="browser-pass-123")
    factories.default_members.append((person, "owner"))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "browser")
    page.fill("#id_password", "browser-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/")
    yield page
    factories.default_members.clear()
