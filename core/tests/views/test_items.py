import pytest
from django.urls import reverse

from core.forms import MAX_TEXT_CHARS
from core.models import Item
from core.tests import factories

pytestmark = pytest.mark.django_db


def _titles(response) -> set[str]:
    return {item.title for item in response.context["page"].object_list}


def test_item_list_filters_by_project_status_type_and_text(auth_client):
    shop, portal = factories.make_project(), factories.make_project()
    factories.make_item(project=shop, title="Checkout crash", type="bug", status="Working")
    factories.make_item(
        project=shop,
        title="Dark mode",
        type="feature",
        status="Backlog",
        description="Users want a darker checkout theme",
    )
    factories.make_item(project=portal, title="Invoice export", type="task", status="Working")
    url = reverse("core:item-list")

    assert _titles(auth_client.get(url)) == {"Checkout crash", "Dark mode", "Invoice export"}
    assert _titles(auth_client.get(url, {"project": shop.pk})) == {"Checkout crash", "Dark mode"}
    assert _titles(auth_client.get(url, {"status": "Working"})) == {
        "Checkout crash",
        "Invoice export",
    }
    assert _titles(auth_client.get(url, {"type": "feature"})) == {"Dark mode"}
    # Text matches the title or the description, case-insensitively.
    assert _titles(auth_client.get(url, {"q": "CHECKOUT"})) == {"Checkout crash", "Dark mode"}
    assert _titles(auth_client.get(url, {"q": "checkout", "type": "bug"})) == {"Checkout crash"}


def test_inbox_shows_inbox_items_unless_another_status_is_asked_for(auth_client):
    factories.make_item(title="new", status="Inbox")
    factories.make_item(title="old", status="Closed")
    assert _titles(auth_client.get(reverse("core:item-inbox"))) == {"new"}
    assert _titles(auth_client.get(reverse("core:item-inbox"), {"status": ""})) == {"new", "old"}


def test_item_list_paginates_and_keeps_filters_in_page_links(auth_client, settings):
    settings.AGIRA_ITEMS_PER_PAGE = 5
    project = factories.make_project()
    for n in range(12):
        factories.make_item(project=project, title=f"task {n}", status="Backlog")
    response = auth_client.get(reverse("core:item-list"), {"status": "Backlog"})
    assert len(response.context["page"].object_list) == 5
    assert "Page 1 of 3" in response.content.decode()
    assert "?status=Backlog&amp;page=2" in response.content.decode()
    last = auth_client.get(reverse("core:item-list"), {"status": "Backlog", "page": 3})
    assert len(last.context["page"].object_list) == 2
    # A page past the end shows the last page rather than an error.
    assert auth_client.get(reverse("core:item-list"), {"page": 99}).status_code == 200


def test_an_over_long_search_is_a_form_error_not_a_crash(auth_client):
    factories.make_item(title="anything")
    response = auth_client.get(reverse("core:item-list"), {"q": "x" * 500})
    assert response.status_code == 200
    assert "at most 200 characters" in response.content.decode()


def test_item_list_queries_do_not_grow_with_rows(
    auth_client, django_assert_max_num_queries, settings
):
    settings.AGIRA_ITEMS_PER_PAGE = 50
    project = factories.make_project()
    assignee = factories.make_user()
    for _ in range(2):
        factories.make_item(project=project, assignee=assignee)
    # 14: the session, the user, their memberships, the page, which indexes are on
    # (the Weaviate and Neo4j configurations), badges, filters...
    with django_assert_max_num_queries(14) as few:
        auth_client.get(reverse("core:item-list"))
    for _ in range(40):
        factories.make_item(project=factories.make_project(), assignee=factories.make_user())
    with django_assert_max_num_queries(len(few.captured_queries)):
        auth_client.get(reverse("core:item-list"))


def test_create_item_prefills_the_project_and_saves(auth_client):
    project = factories.make_project()
    form_page = auth_client.get(reverse("core:item-create"), {"project": project.pk})
    assert form_page.context["form"].initial["project"] == project.pk
    response = auth_client.post(
        reverse("core:item-create"),
        {"project": project.pk, "title": "  Export as CSV  ", "type": "feature", "status": "Inbox"},
    )
    item = Item.objects.get()
    assert response.url == item.get_absolute_url()
    assert item.title == "Export as CSV"


def test_an_empty_title_is_a_form_error_and_nothing_is_saved(auth_client):
    project = factories.make_project()
    for title in ("", "    "):
        response = auth_client.post(
            reverse("core:item-create"),
            {"project": project.pk, "title": title, "type": "bug", "status": "Inbox"},
        )
        assert response.status_code == 200
        assert response.context["form"].errors["title"]
    assert not Item.objects.exists()


def test_a_bogus_project_prefill_is_ignored(auth_client):
    factories.make_project()
    for value in ("abc", "999999", "-1"):
        response = auth_client.get(reverse("core:item-create"), {"project": value})
        assert response.status_code == 200
        assert "project" not in response.context["form"].initial


def test_edit_item_changes_status_and_keeps_the_rest(auth_client, item):
    response = auth_client.post(
        reverse("core:item-edit", args=[item.pk]),
        {
            "project": item.project.pk,
            "title": item.title,
            "type": item.type,
            "status": "Testing",
            "description": item.description,
        },
    )
    assert response.url == item.get_absolute_url()
    item.refresh_from_db()
    assert item.status == "Testing"
    assert item.description == "Something to do."


def test_an_invalid_edit_saves_nothing(auth_client, item):
    auth_client.post(
        reverse("core:item-edit", args=[item.pk]),
        {"project": item.project.pk, "title": "", "type": "bug", "status": "Closed"},
    )
    item.refresh_from_db()
    assert item.status == "Inbox"
    assert item.title.startswith("Item")


def test_delete_item(auth_client, item):
    factories.make_comment(item=item)
    confirm = auth_client.get(reverse("core:item-delete", args=[item.pk]))
    assert b"comments, attachments and GitHub links are deleted with it" in confirm.content
    response = auth_client.post(reverse("core:item-delete", args=[item.pk]))
    assert response.url == reverse("core:item-list")
    assert not Item.objects.exists()


def test_item_detail_shows_the_four_tabs(auth_client, item):
    html = auth_client.get(item.get_absolute_url()).content.decode()
    for tab in ("overview", "comments", "attachments", "github"):
        assert f'data-tab="{tab}"' in html
    assert 'data-tab-group="item"' in html


def test_the_description_limit_is_stated_next_to_the_field(auth_client):
    factories.make_project()
    html = auth_client.get(reverse("core:item-create")).content.decode()
    assert f"Up to {MAX_TEXT_CHARS:,} characters" in html
    assert 'id="id_description_helptext"' in html  # what the textarea's aria-describedby names
    assert "maxlength" not in html.split('name="description"', 1)[1].split(">", 1)[0]


@pytest.mark.parametrize("length", [MAX_TEXT_CHARS + 1, 3_000_000])
def test_an_over_long_description_is_a_form_error_that_keeps_the_text(auth_client, item, length):
    # 3,000,000 characters is more than Django's default request limit (2.5 MB),
    # which used to answer with a bare 400 page and lose the text.
    text = "Steps to reproduce: " + "x" * (length - 20)
    response = auth_client.post(
        reverse("core:item-edit", args=[item.pk]),
        {
            "project": item.project.pk,
            "title": item.title,
            "type": item.type,
            "status": "Testing",
            "description": text,
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert f"is {length:,} characters long; the limit is {MAX_TEXT_CHARS:,}" in html
    assert text in html  # given back in the textarea, nothing lost
    item.refresh_from_db()
    assert item.status == "Inbox"
    assert item.description == "Something to do."


def test_a_description_at_the_limit_is_saved(auth_client, item):
    text = "y" * MAX_TEXT_CHARS
    response = auth_client.post(
        reverse("core:item-edit", args=[item.pk]),
        {"project": item.project.pk, "title": item.title, "type": item.type,
         "status": item.status, "description": text},
    )  # fmt: skip
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.description == text
