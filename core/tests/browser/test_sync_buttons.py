"""Seed 000's manual checklist, in a real browser against the in-process
Weaviate-compatible server. A screenshot of each state goes to test-artifacts/."""

import re

import pytest
from playwright.sync_api import expect

from core.models import WeaviateConfiguration
from core.services.index import sync_paused
from core.services.index.documents import object_uuid
from core.tests import factories
from core.tests.browser.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(350)  # let Bootstrap's fade finish, for a clear picture
    page.screenshot(path=str(ARTIFACTS / f"sync-{name}.png"), full_page=True)


@pytest.fixture
def staff_page(page, live_server, weaviate_sync):
    factories.make_user("ops", password="ops-pass-123", is_staff=True, is_superuser=True)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-pass-123")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/")
    return page


def header_button(page):
    return page.locator("main .d-flex.gap-2 .weaviate-button").first


def test_the_button_follows_the_object_through_every_state(staff_page, live_server, weaviate_sync):
    page = staff_page
    project = factories.make_project(name="Webshop")

    # Create an item in the browser: the button turns green.
    page.goto(f"{live_server.url}/items/new/?project={project.pk}")
    page.fill("#id_title", "Basket empties on login")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/items/\d+/$"))
    item_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    button = header_button(page)
    expect(button).to_have_attribute("data-sync-colour", "green")
    expect(button).to_have_class(re.compile("btn-success"))
    shot(page, "1-green")

    # Open the modal: the stored JSON.
    button.click()
    modal = page.locator("#weaviate-modal")
    expect(modal).to_be_visible()
    expect(modal.locator("pre code")).to_contain_text('"title": "Basket empties on login"')
    expect(modal.locator("#weaviate-resync")).to_be_visible()
    shot(page, "2-modal-json")
    modal.locator(".btn-close").click()
    expect(modal).to_be_hidden()

    # Deleted behind Agira's back: the button answers from the sync records (no
    # index call on a page), the modal asks the index and says the object is gone.
    weaviate_sync.store.delete("AgiraObject", str(object_uuid("item", item_id)))
    page.reload()
    button = header_button(page)
    expect(button).to_have_attribute("data-sync-colour", "green")
    button.click()
    expect(modal.locator(".alert-warning")).to_contain_text("not in the index")
    shot(page, "3-missing-in-modal")

    # Push from the modal: written again without a page reload.
    page.evaluate("window.__marker = 'same page'")
    modal.locator("#weaviate-push").click()
    expect(modal.locator("#weaviate-message")).to_have_text(re.compile("Written to the index now"))
    expect(header_button(page)).to_have_attribute("data-sync-colour", "green")
    assert page.evaluate("window.__marker") == "same page"  # no reload happened
    shot(page, "4-pushed-green")

    # Re-sync.
    modal.locator("#weaviate-resync").click()
    expect(modal.locator("#weaviate-message")).to_be_visible()
    assert weaviate_sync.store.get("AgiraObject", object_uuid("item", item_id))["title"] == (
        "Basket empties on login"
    )
    modal.locator(".btn-close").click()

    # Disable sync in the admin: grey.
    page.goto(f"{live_server.url}/admin/core/weaviateconfiguration/1/change/")
    page.uncheck("#id_enabled")
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r"/admin/"))
    assert WeaviateConfiguration.objects.get(pk=1).enabled is False
    page.goto(f"{live_server.url}/items/{item_id}/")
    expect(header_button(page)).to_have_attribute("data-sync-colour", "grey")
    shot(page, "5-grey-disabled")


def test_comment_and_attachment_buttons(staff_page, live_server, weaviate_sync, tmp_path):
    page = staff_page
    item = factories.make_item(title="With parts")
    comment = factories.make_comment(item=item, body="A remark")
    page.goto(f"{live_server.url}/items/{item.pk}/#attachments")
    upload = tmp_path / "notes.md"
    upload.write_text("# Notes\nretry twice\n")
    page.set_input_files("#pane-attachments input[type=file]", str(upload))
    page.click("#pane-attachments button[type=submit]")
    page.wait_for_url(re.compile(r"#attachments$"))

    attachment_button = page.locator("#pane-attachments td .weaviate-button")
    expect(attachment_button).to_have_attribute("data-sync-colour", "green")
    attachment_button.click()
    expect(page.locator("#weaviate-modal pre code")).to_contain_text("retry twice")
    shot(page, "6-attachment-modal")
    page.locator("#weaviate-modal .btn-close").click()

    page.click("#tab-comments")
    comment_button = page.locator(f'[data-comment-id="{comment.pk}"] .weaviate-button')
    expect(comment_button).to_have_attribute("data-sync-colour", "green")
    comment_button.click()
    expect(page.locator("#weaviate-modal pre code")).to_contain_text('"text": "A remark"')
    shot(page, "7-comment-modal")


def test_the_dashboard_shows_a_failure_and_retry_fixes_it(
    staff_page, live_server, weaviate_sync, settings
):
    page = staff_page
    settings.AGIRA_SYNC_MAX_ATTEMPTS = 1
    weaviate_sync.faults.fail_objects(
        where=lambda c, u, p: p.get("title") == "Stubborn", message="refused by the index"
    )
    item = factories.make_item(title="Stubborn")
    page.goto(f"{live_server.url}/sync/")
    row = page.locator(f'[data-failed="item:{item.pk}"]')
    expect(row).to_contain_text("refused by the index")
    shot(page, "8-dashboard-failed")

    weaviate_sync.faults.clear()
    row.locator("button", has_text="Retry").click()
    expect(page.locator(".alert-success")).to_contain_text("Queued 1 failed object again.")
    expect(page.locator(f'[data-failed="item:{item.pk}"]')).to_have_count(0)
    shot(page, "9-dashboard-retried")
    page.goto(f"{live_server.url}/items/{item.pk}/")
    expect(header_button(page)).to_have_attribute("data-sync-colour", "green")


def test_an_amber_button_turns_green_without_a_reload(logged_in_page, live_server, weaviate_sync):
    page = logged_in_page
    # Paused in this thread: the save is recorded but not written until the
    # block ends, so the page first shows the change pending.
    with sync_paused():
        item = factories.make_item(title="Held back")
        page.goto(f"{live_server.url}/items/{item.pk}/")
        expect(header_button(page)).to_have_attribute("data-sync-colour", "amber")
        page.evaluate("window.__marker = 'same page'")
        shot(page, "10-amber-pending")
    # Leaving the block drains: the change is written, and the button follows.
    assert weaviate_sync.store.get("AgiraObject", object_uuid("item", item.pk))
    expect(header_button(page)).to_have_attribute("data-sync-colour", "green")
    assert page.evaluate("window.__marker") == "same page"  # no reload happened
    # Settled: it stops asking.
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.wait_for_timeout(2500)
    assert not [url for url in requests if "/weaviate/status/" in url]


def test_escape_closes_the_modal_after_a_push_and_focus_returns_to_the_button(
    logged_in_page, live_server, weaviate_sync
):
    page = logged_in_page
    item = factories.make_item(title="Lost by the index")
    weaviate_sync.store.delete("AgiraObject", str(object_uuid("item", item.pk)))
    page.goto(f"{live_server.url}/items/{item.pk}/")
    header_button(page).click()
    modal = page.locator("#weaviate-modal")
    # Bootstrap ignores Escape until the opening fade ends, when it focuses the modal.
    page.wait_for_function("document.getElementById('weaviate-modal') === document.activeElement")
    modal.locator("#weaviate-push").click()
    expect(modal.locator("#weaviate-message")).to_have_text(re.compile("Written to the index now"))
    # The swap replaced the focused Push button: focus must stay in the modal.
    assert page.evaluate(
        "document.getElementById('weaviate-modal').contains(document.activeElement)"
    )
    page.keyboard.press("Escape")
    expect(modal).to_be_hidden()
    # The push reloaded the button that opened the modal; its successor gets the focus.
    expect(header_button(page)).to_be_focused()
