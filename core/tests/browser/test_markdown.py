import pytest
from playwright.sync_api import expect

from core.markdown import MAX_MARKDOWN_CHARS
from core.tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_item_description_is_shown_as_rendered_markdown(logged_in_page, live_server):
    page = logged_in_page
    item = factories.make_item(
        title="Ship 2.0",
        description="# Release plan\n\n- build\n- tag\n\n```\nmake release\n```\n\n"
        "<script>document.title = 'pwned'</script>",
    )
    page.goto(f"{live_server.url}{item.get_absolute_url()}")
    description = page.locator(".item-description")
    expect(description.locator("h1")).to_have_text("Release plan")
    expect(description.locator("li")).to_have_text(["build", "tag"])
    expect(description.locator("pre code")).to_have_text("make release")
    expect(description).to_contain_text("<script>document.title = 'pwned'</script>")
    assert page.title() == "Ship 2.0 · Agira"


def test_preview_tab_renders_what_was_typed(logged_in_page, live_server):
    page = logged_in_page
    item = factories.make_item(title="Preview me")
    page.goto(f"{live_server.url}/items/{item.pk}/edit/")
    page.fill("#id_description", "## Steps\n\n1. open **basket**\n2. log in\n")

    page.click("#id_description-markdown-preview-tab")
    preview = page.locator("#id_description-markdown-preview")
    expect(preview.locator("h2")).to_have_text("Steps")
    expect(preview.locator("ol li strong")).to_have_text("basket")
    expect(page.locator("#id_description")).to_be_hidden()

    # Back to Write: the text is still there and the form saves it.
    page.click("#id_description-markdown-write-tab")
    expect(page.locator("#id_description")).to_be_visible()
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}{item.get_absolute_url()}")
    expect(page.locator(".item-description h2")).to_have_text("Steps")

    # A text too long to preview says why instead of staying blank.
    page.goto(f"{live_server.url}/items/{item.pk}/edit/")
    page.fill("#id_description", "x" * (MAX_MARKDOWN_CHARS + 1))
    page.click("#id_description-markdown-preview-tab")
    expect(preview.locator(".alert-danger")).to_contain_text("Too long to preview")


def test_comment_preview_on_the_item_page(logged_in_page, live_server):
    page = logged_in_page
    item = factories.make_item(title="Discuss")
    page.goto(f"{live_server.url}{item.get_absolute_url()}#comments")
    page.fill("#id_body", "Fixed in `v2`")
    page.click("#id_body-markdown-preview-tab")
    expect(page.locator("#id_body-markdown-preview code")).to_have_text("v2")
    page.click("#id_body-markdown-write-tab")
    page.click("#pane-comments button[type=submit]")
    expect(page.locator("#comments .comment-body code")).to_have_text("v2")
