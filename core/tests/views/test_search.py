"""The search page, answered by the primary target (Weaviate, the embedded
index, or Qdrant), the same behaviour for each."""

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
    # Which index answered is for staff; others read "the index".
    assert "answered by the index" in html
    assert f'href="/items/{catalogue["basket"].pk}/"' in html
    assert "in Webshop" in html


def test_search_respects_type_project_and_status_filters(catalogue):
    client = catalogue["client"]
    assert _results(client.get(URL, {"q": "basket", "type": "comment", "mode": "keyword"})) == {
        ("comment", str(catalogue["comment"].pk))
    }
    assert _results(
        client.get(URL, {"q": "basket", "project": catalogue["portal"].pk, "mode": "keyword"})
    ) == {("item", str(catalogue["invoice"].pk))}
    assert _results(client.get(URL, {"q": "basket", "status": "Working", "mode": "keyword"})) == {
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
        response = client.get(URL, {"q": "paginated", "page": page, "mode": "keyword"})
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
    settings.AGIRA_EMBEDDED_ENABLED = False
    settings.AGIRA_QDRANT_ENABLED = False
    factories.make_project()  # something the user may see
    response = auth_client.get(URL, {"q": "anything"})
    assert "Search is unavailable: No index is enabled" in response.content.decode()


def test_the_search_page_needs_a_login(client):
    response = client.get(URL, {"q": "x"})
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_keyword_search_ranks_a_title_match_above_a_mention_deep_in_a_long_text(sync, auth_client):
    if sync.name == "qdrant":
        pytest.skip("Qdrant has no BM25: its keyword matches come in index order")
    project = factories.make_project()
    filler = " ".join(["The nightly job renamed files and moved folders around."] * 60)
    deep = factories.make_item(
        project=project, title="Nightly job", description=f"{filler} Once it said refund."
    )
    titled = factories.make_item(project=project, title="Refund fails", description="Hmm.")
    rows = auth_client.get(URL, {"q": "refund", "mode": "keyword"}).context["rows"]
    ids = [row["doc"]["object_id"] for row in rows]
    assert ids[:2] == [str(titled.pk), str(deep.pk)]


def test_semantic_search_finds_a_match_with_no_word_in_common(sync, auth_client):
    project = factories.make_project()
    wanted = factories.make_item(
        project=project,
        title="Cannot sign in once the password was reset",
        description="Reported by three customers.",
    )
    for title in ("Invoice PDF has the wrong logo", "Dark mode for the settings page"):
        factories.make_item(project=project, title=title)
    response = auth_client.get(
        URL, {"q": "login fails after a password change", "mode": "semantic", "type": "item"}
    )
    rows = response.context["rows"]
    assert rows[0]["doc"]["object_id"] == str(wanted.pk)
    assert "semantic search, best first" in response.content.decode()


def test_a_filtered_page_is_full_when_enough_matches_exist(sync, auth_client):
    shop, other = factories.make_project(name="Shop"), factories.make_project(name="Other")
    # Most close matches are in another project: the filter must apply inside the query.
    for n in range(30):
        factories.make_item(project=other, title=f"Checkout error {n}")
    for n in range(25):
        factories.make_item(project=shop, title=f"Checkout problem {n}")
    for mode, query in (("keyword", "checkout"), ("semantic", "checkout error")):
        response = auth_client.get(
            URL, {"q": query, "mode": mode, "project": shop.pk, "type": "item"}
        )
        rows = response.context["rows"]
        assert len(rows) == 20, mode
        assert {row["doc"]["project_id"] for row in rows} == {str(shop.pk)}
        assert response.context["results"].has_next


def test_a_page_beyond_the_cap_is_refused_with_a_message(auth_client, db):
    response = auth_client.get(URL, {"q": "a", "page": 99999})
    assert response.status_code == 200
    assert response.context["results"] is None
    assert "Only the first 50 pages can be shown" in response.content.decode()
