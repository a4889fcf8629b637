"""The three endpoints against each index target (Weaviate, embedded, Qdrant).

The token's owner is staff here: the answers name the targets and their
errors. What others see is the last test."""

import pytest

from core.tests import factories

LABELS = {"weaviate": "Weaviate", "embedded": "embedded index", "qdrant": "Qdrant (local mode)"}


@pytest.fixture(autouse=True)
def staff(user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])


def _found(body) -> set[tuple[str, str]]:
    return {(hit["type"], hit["object_id"]) for hit in body["hits"]}


def test_search_returns_hits_with_what_a_script_needs(api_client, catalogue, sync):
    response = api_client.get("/api/search", {"q": "basket", "mode": "keyword"})
    assert response.status_code == 200, response.content
    body = response.json()
    basket, invoice, comment = catalogue["basket"], catalogue["invoice"], catalogue["comment"]
    assert _found(body) == {
        ("item", str(basket.pk)),
        ("item", str(invoice.pk)),
        ("comment", str(comment.pk)),
    }
    assert body["answered_by"] == LABELS[sync.name]
    assert body["mode"] == "keyword"
    assert body["page"] == 1
    assert body["has_next"] is False
    hit = next(h for h in body["hits"] if h["object_id"] == str(basket.pk) and h["type"] == "item")
    assert hit["item_number"] == f"#{basket.pk}"
    assert hit["title"] == "Checkout loses the basket"
    assert hit["project_id"] == str(catalogue["shop"].pk)
    assert hit["status"] == "Working"
    assert hit["url"] == f"http://testserver/items/{basket.pk}/"
    assert "basket is empty" in hit["snippet"]
    assert "<" not in hit["snippet"]
    on_comment = next(h for h in body["hits"] if h["type"] == "comment")
    assert on_comment["item_number"] == f"#{invoice.pk}"


def test_search_filters_by_type_project_and_status(api_client, catalogue):
    def found(**params):
        return _found(api_client.get("/api/search", {"q": "basket", **params}).json())

    assert found(type="comment") == {("comment", str(catalogue["comment"].pk))}
    assert found(project=catalogue["shop"].pk) == {("item", str(catalogue["basket"].pk))}
    assert found(status="Backlog") == {("item", str(catalogue["invoice"].pk))}


def test_search_pages_by_limit(api_client, catalogue):
    project = factories.make_project(name="Many")
    for n in range(5):
        factories.make_item(project=project, title=f"Paginated thing {n}")
    seen = set()
    for page in (1, 2, 3):
        body = api_client.get(
            "/api/search", {"q": "paginated", "mode": "keyword", "limit": 2, "page": page}
        ).json()
        assert len(body["hits"]) <= 2
        seen |= _found(body)
    assert len(seen) == 5
    assert body["has_next"] is False


def test_related_objects_of_an_item(api_client, catalogue, sync):
    basket = catalogue["basket"]
    response = api_client.get(f"/api/objects/item/{basket.pk}/related", {"limit": 50})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["answered_by"] == LABELS[sync.name]
    assert ("item", str(basket.pk)) not in _found(body)
    # The invoice's comment is shown as the invoice, once.
    invoice = [h for h in body["hits"] if h["object_id"] == str(catalogue["invoice"].pk)]
    assert len(invoice) == 1
    assert invoice[0]["type"] == "item"
    assert invoice[0]["project_name"] == "Portal"
    assert invoice[0]["url"] == f"http://testserver/items/{catalogue['invoice'].pk}/"
    one = api_client.get(f"/api/objects/item/{basket.pk}/related", {"limit": 1}).json()
    assert len(one["hits"]) == 1
    same_project = api_client.get(
        f"/api/objects/item/{basket.pk}/related", {"scope": "project"}
    ).json()
    assert {h["project_id"] for h in same_project["hits"]} <= {str(catalogue["shop"].pk)}


def test_an_object_with_its_document_and_sync_state(api_client, catalogue, sync):
    basket = catalogue["basket"]
    response = api_client.get(f"/api/objects/item/{basket.pk}/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["type"], body["object_id"]) == ("item", str(basket.pk))
    assert body["document"]["title"] == "Checkout loses the basket"
    assert body["document"]["url"] == f"/items/{basket.pk}/"
    [state] = body["targets"]
    assert state["target"] == sync.name
    assert state["label"] == LABELS[sync.name]
    assert state["state"] == "green"
    assert state["summary"] == "In sync"
    assert state["last_synced_at"]
    assert state["document"]["title"] == "Checkout loses the basket"
    assert state["document"]["object_id"] == str(basket.pk)


def test_an_object_the_index_lost_is_red_with_no_document(api_client, index):
    item = factories.make_item(title="Gone missing")
    index.remove("item", item.pk)
    [state] = api_client.get(f"/api/objects/item/{item.pk}/").json()["targets"]
    assert state["state"] == "red"
    assert state["document"] is None
    assert "does not hold this object" in state["reason"]


def test_an_object_with_sync_off_says_so(api_client, item, settings):
    settings.AGIRA_EMBEDDED_ENABLED = False
    settings.AGIRA_QDRANT_ENABLED = False
    body = api_client.get(f"/api/objects/item/{item.pk}/").json()
    assert body["document"]["title"] == item.title
    assert body["targets"] == [
        {
            "target": "",
            "label": "Index",
            "state": "grey",
            "summary": "Sync disabled",
            "reason": body["targets"][0]["reason"],
            "last_synced_at": None,
            "document": None,
        }
    ]
    assert "Sync is off" in body["targets"][0]["reason"]


def test_people_who_do_not_run_agira_read_no_target_names_or_errors(api_client, index, user):
    user.is_staff = False
    user.save(update_fields=["is_staff"])
    item = factories.make_item(title="Gone missing")
    index.remove("item", item.pk)
    body = api_client.get(f"/api/objects/item/{item.pk}/").json()
    [state] = body["targets"]
    assert state["label"] == "index"
    assert state["state"] == "red"
    assert state["summary"] == "A problem: your administrator can see it"
    assert state["reason"] == ""
    found = api_client.get("/api/search", {"q": "missing", "mode": "keyword"}).json()
    assert found["answered_by"] == "index"
