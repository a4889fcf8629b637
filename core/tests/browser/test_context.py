"""The index's context in a real browser: duplicates suggested while typing,
the related tab loaded when opened, the links tab read from the graph."""

import re

import pytest
from playwright.sync_api import expect

from core.models import ItemStatus
from core.services.index.engine import drain
from core.tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_typing_a_title_suggests_an_open_duplicate(logged_in_page, live_server):
    page = logged_in_page
    project = factories.make_project(name="Webshop")
    original = factories.make_item(
        project=project,
        title="Password reset email never arrives",
        description="Users ask for a reset link and get no mail.",
    )
    closed = factories.make_item(
        project=project, title="Reset password mail is missing", status=ItemStatus.CLOSED
    )
    factories.make_item(project=project, title="Dark mode for the settings page")
    drain()

    page.goto(f"{live_server.url}/items/new/?project={project.pk}")
    requests: list[str] = []
    page.on(
        "request",
        lambda request: requests.append(request.url) if "/items/similar/" in request.url else None,
    )
    page.locator("#id_title").press_sequentially("The reset password mail does not come")
    box = page.locator("#duplicates-found")
    expect(box).to_be_visible()
    expect(box).to_contain_text("Possible duplicates")
    link = box.locator(f'[data-duplicate-id="{original.pk}"] a')
    expect(link).to_have_attribute("href", f"/items/{original.pk}/")
    expect(box.locator(f'[data-duplicate-id="{closed.pk}"]')).to_have_count(0)
    # Debounced: one request after the pause, not one per key.
    assert len(requests) == 1

    # The hint never stands in the way of saving.
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/items/\d+/$"))
    expect(page.locator("h1")).to_have_text("The reset password mail does not come")


def test_the_related_tab_loads_when_opened(logged_in_page, live_server):
    page = logged_in_page
    project = factories.make_project(name="Webshop")
    subject = factories.make_item(project=project, title="Invoice PDF shows the wrong total")
    twin = factories.make_item(project=project, title="Wrong sum printed on the invoice PDF")
    factories.make_item(project=project, title="Dark mode for the settings page")
    drain()

    page.goto(f"{live_server.url}/items/{subject.pk}/")
    expect(page.locator("#related-objects")).to_have_count(0)  # not loaded yet
    page.click("#tab-related")
    first = page.locator("#related-table tbody tr").first
    expect(first).to_have_attribute("data-related-id", str(twin.pk))
    page.check("#related-open")
    expect(page.locator("#related-open")).to_be_checked()
    expect(page.locator("#related-table tbody tr").first).to_have_attribute(
        "data-related-id", str(twin.pk)
    )


def test_the_links_tab_loads_the_graph_when_opened(logged_in_page, live_server, settings):
    settings.AGIRA_GRAPH_ENABLED = True
    settings.AGIRA_EMBEDDER_PROVIDER = "none"
    page = logged_in_page
    project = factories.make_project(name="Webshop")
    subject = factories.make_item(project=project, title="Invoice PDF shows the wrong total")
    sibling = factories.make_item(project=project, title="Dark mode for the settings page")
    factories.make_release(project=project, version="3.0.0")
    drain()

    page.goto(f"{live_server.url}/items/{subject.pk}/")
    expect(page.locator("#item-links")).to_have_count(0)  # not loaded yet
    page.click("#tab-links")
    expect(page.locator('[data-links-group="Project"]')).to_contain_text("Webshop")
    others = page.locator('[data-links-group="Other items in the project"] li')
    expect(others).to_have_count(1)
    expect(others.first).to_have_attribute("data-link-id", str(sibling.pk))
    expect(page.locator('[data-links-group="Releases of the project"]')).to_contain_text("3.0.0")
    others.first.locator("a").click()
    expect(page).to_have_url(re.compile(rf"/items/{sibling.pk}/$"))
