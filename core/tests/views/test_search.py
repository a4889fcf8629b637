"""The search page, answered by the primary target (Weaviate BM25 or the
embedded index's full-text match), the same behaviour for both."""

import pytest
from django.urls import reverse

from core.tests import factories

URL = reverse("core:search")


@pytest.fixture
def catalogue(sync, client, user):
    client.force_login(user)
    shop = factories.make_project(name="Webshop")
    portal = factories.make_project(name="Portal")
    data = {
        "basket": factories.make_item(
            project=shop,
            title="Checkout loses the basket",
            status="Working",
            description="After login the basket is empty; customers complain.",
        ),
        "invoice": factories.make_item(
            project=portal,
            title="Invoice export",
            status="Backlog",
            description="Export invoices as CSV for the basket report.",
        ),
        "dark": factories.make_item(
            project=shop, title="Dark mode", status="Working", description="A darker theme."
        ),
    }
    data["comment"] = factories.make_comment(item=data["dark"], body="Customers love the basket.")
    return {"client": client, "shop": shop, "portal": portal, **data}


def _results(response) -> set[tuple[str, str]]:
    rows = response.context["rows"]
    return {(row["doc"]["type"], row["doc"]["object_id"]) for row in rows}


def test_search_finds_an_item_by_a_word_of_its_description(catalogue, sync):
    response = catalogue["client"].get(URL, {"q": "customers"})
    assert response.status_code == 200
    found = _results(response)
    assert ("item", str(catalogue["basket"].pk)) in found
    assert ("comment", str(catalogue["comment"].pk)) in found
    assert ("item", str(catalogue["dark"].pk)) not in found
    html = response.content.decode()
    label = "Weaviate" if sync.name == "weaviate" else "embedded index"
    assert f"answered by the {label}" in html
    assert f'href="/items/{catalogue["basket"].pk}/"' in html
    assert "in Webshop" in html


def test_search_respects_type_project_and_status_filters(catalogue):
    client = catalogue["client"]
    assert _results(client.get(URL, {"q": "basket", "type": "comment"})) == {
        ("comment", str(catalogue["comment"].pk))
    }
    assert _results(client.get(URL, {"q": "basket", "project": catalogue["portal"].pk})) == {
        ("item", str(catalogue["invoice"].pk))
    }
    assert _results(client.get(URL, {"q": "basket", "status": "Working"})) == {
        ("item", str(catalogue["basket"].pk))
    }


def test_search_paginates(catalogue, sync, settings, monkeypatch):
    from core.services.index import service

    monkeypatch.setattr(service, "SEARCH_PAGE_SIZE", 2)
    project = factories.make_project(name="Many")
    for n in range(5):
        factories.make_item(project=project, title=f"Paginated thing {n}")
    client = catalogue["client"]
    seen = set()
    for page in (1, 2, 3):
        response = client.get(URL, {"q": "paginated", "page": page})
        seen |= _results(response)
    assert len(seen) == 5
    assert response.context["results"].has_next is False


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("", "Type a word or two to search for."),
        ("    ", "Type a word or two to search for."),
        ("x" * 201, "Searches are limited to 200 characters."),
    ],
)
def test_empty_and_over_long_queries_get_a_clear_message(catalogue, q, message):
    response = catalogue["client"].get(URL, {"q": q})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert response.context["results"] is None


def test_no_index_answers_says_so(auth_client, settings, transactional_db):
    settings.AGIRA_QDRANT_ENABLED = False
    response = auth_client.get(URL, {"q": "anything"})
    assert "Search is unavailable: No index is enabled" in response.content.decode()


def test_the_search_page_needs_a_login(client):
    response = client.get(URL, {"q": "x"})
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
