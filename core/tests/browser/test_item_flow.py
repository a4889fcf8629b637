import re

import pytest
from playwright.sync_api import expect

from core.models import Item, ItemComment
from core.tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_item_comment_and_the_tab_is_remembered(logged_in_page, live_server):
    page = logged_in_page
    project = factories.make_project(name="Webshop")

    page.goto(f"{live_server.url}/items/new/?project={project.pk}")
    page.fill("#id_title", "Checkout loses the basket")
    page.select_option("#id_type", "bug")
    page.fill("#id_description", "Steps: add to basket, log in, basket is empty.")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/items/\d+/$"))

    item = Item.objects.get(title="Checkout loses the basket")
    assert item.project == project
    assert page.url.endswith(f"/items/{item.pk}/")
    expect(page.locator("h1")).to_have_text("Checkout loses the basket")
    expect(page.locator(".alert-success")).to_contain_text("Created item")

    # Comments tab: the comment is posted with htmx and appears without a reload.
    page.click("#tab-comments")
    expect(page.locator("#pane-comments")).to_be_visible()
    page.fill("#pane-comments textarea[name=body]", "Reproduced on staging.")
    page.click("#pane-comments button[type=submit]")
    expect(page.locator("#comments .comment-body")).to_have_text("Reproduced on staging.")
    expect(page.locator("#comment-count")).to_have_text("1")
    assert ItemComment.objects.get().item == item

    # Switch to attachments, then open the item afresh (no hash in the URL):
    # the tab comes back from localStorage.
    page.click("#tab-attachments")
    expect(page.locator("#tab-attachments")).to_have_class(re.compile(r"\bactive\b"))
    page.reload()
    expect(page.locator("#tab-attachments")).to_have_class(re.compile(r"\bactive\b"))
    page.goto(f"{live_server.url}/items/{item.pk}/")
    expect(page.locator("#tab-attachments")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#pane-attachments")).to_be_visible()
    stored = page.evaluate("() => window.localStorage.getItem('agira:tab:item')")
    assert stored == "attachments"

    # Another item opens on the same tab: the position is remembered per page type.
    other = factories.make_item(project=project, title="Another")
    page.goto(f"{live_server.url}/items/{other.pk}/")
    expect(page.locator("#tab-attachments")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#pane-attachments")).to_contain_text("No attachments yet.")
    expect(page.locator("#pane-overview")).to_be_hidden()


def test_project_cards_show_counts_with_tooltips(logged_in_page, live_server):
    page = logged_in_page
    project = factories.make_project(name="Portal")
    for status in ("Inbox", "Inbox", "Working"):
        factories.make_item(project=project, status=status)
    page.goto(f"{live_server.url}/projects/")
    card = page.locator(f'[data-project-id="{project.pk}"]')
    expect(card.locator('[data-status="inbox"] .fw-semibold')).to_have_text("2")
    expect(card.locator('[data-status="working"] .fw-semibold')).to_have_text("1")
    card.locator('[data-status="inbox"]').hover()
    expect(page.locator(".tooltip")).to_have_text("Inbox: 2 items")


def test_over_limit_upload_shows_the_message_on_the_attachments_tab(
    logged_in_page, live_server, settings, tmp_path
):
    settings.AGIRA_MAX_UPLOAD_BYTES = 100
    page = logged_in_page
    item = factories.make_item(title="Upload here")
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 500)
    page.goto(f"{live_server.url}/items/{item.pk}/#attachments")
    page.set_input_files("#pane-attachments input[type=file]", str(big))
    page.click("#pane-attachments button[type=submit]")
    expect(page.locator("#pane-attachments")).to_be_visible()
    expect(page.locator("#pane-attachments .invalid-feedback")).to_contain_text(
        "attachments may be at most 100"
    )
    assert not item.attachments.exists()


def test_a_new_item_is_found_in_search(logged_in_page, live_server):
    page = logged_in_page
    project = factories.make_project(name="Zoo")
    page.goto(f"{live_server.url}/items/new/?project={project.pk}")
    page.fill("#id_title", "Quokka enclosure gate sticks")
    page.fill("#id_description", "The gate latch of the quokka enclosure jams in the rain.")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/items/\d+/$"))

    page.fill("nav input[name=q]", "latch")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/search/\?q=latch"))
    result = page.locator("[data-result-type=item]")
    expect(result).to_have_count(1)
    expect(result).to_contain_text("Quokka enclosure gate sticks")
    expect(page.locator("#search-summary")).to_contain_text("answered by the index")
    result.click()
    expect(page.locator("h1")).to_have_text("Quokka enclosure gate sticks")
