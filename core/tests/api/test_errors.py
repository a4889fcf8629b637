"""Every refusal is JSON `{"detail": ...}`: bad parameters 400, unknown
objects and routes 404, wrong methods 405, no index 503."""

import pytest
from django.test import Client

from core.tests import factories


def _refused(response, status: int) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["detail"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body["detail"]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"q": "x", "mode": "bogus"}, ["mode", "hybrid", "keyword", "semantic"]),
        ({"q": "x", "limit": 100000}, ["limit", "100"]),
        ({"q": "x", "limit": 0}, ["limit", "1"]),
        ({"q": "x", "limit": "ten"}, ["limit", "integer"]),
        ({"q": "x", "page": 51}, ["page", "50"]),
        ({"q": "x", "type": "bogus"}, ["type", "item"]),
        ({"q": "x", "project": "abc"}, ["project"]),
        ({"q": "x", "status": "s" * 51}, ["status", "50"]),
        ({"q": "x" * 1001}, ["q", "1000"]),
        ({}, ["q", "required"]),
    ],
)
def test_bad_search_parameters_are_400_with_a_sentence(api_client, params, words):
    detail = _refused(api_client.get("/api/search", params), 400)
    for word in words:
        assert word in detail


def test_an_empty_parameter_is_refused_not_taken_for_absent(api_client):
    # The schema allows no empty mode or limit: leave a parameter out instead.
    detail = _refused(api_client.get("/api/search?q=x&mode=&limit="), 400)
    assert "mode" in detail
    assert "limit" in detail
    assert api_client.get("/api/search?q=").status_code == 200


def test_the_largest_limit_is_accepted(api_client):
    assert api_client.get("/api/search", {"q": "", "limit": 100}).status_code == 200


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limit": 51}, ["limit", "50"]),
        ({"scope": "galaxy"}, ["scope", "all", "project"]),
        ({"open_only": "perhaps"}, ["open_only"]),
    ],
)
def test_bad_related_parameters_are_400(api_client, item, params, words):
    detail = _refused(api_client.get(f"/api/objects/item/{item.pk}/related", params), 400)
    for word in words:
        assert word in detail


@pytest.mark.parametrize("suffix", ["/", "/related"])
@pytest.mark.parametrize("object_id", ["999999", "9" * 18])
def test_an_object_that_does_not_exist_is_404(api_client, db, suffix, object_id):
    detail = _refused(api_client.get(f"/api/objects/item/{object_id}{suffix}"), 404)
    assert detail == f"No item with id {object_id}."


@pytest.mark.parametrize("suffix", ["/", "/related"])
@pytest.mark.parametrize(
    "object_id", ["9" * 19, "9" * 10_000, "-1", "1.5", "abc", "²", "١٢", "1%0A"]
)
def test_an_id_that_is_not_a_database_key_is_400(api_client, db, suffix, object_id):
    detail = _refused(api_client.get(f"/api/objects/item/{object_id}{suffix}"), 400)
    assert detail.startswith("object_id: ")
    assert len(detail) < 200


@pytest.mark.parametrize("suffix", ["/", "/related"])
def test_an_unknown_type_is_404(api_client, item, suffix):
    detail = _refused(api_client.get(f"/api/objects/ticket/{item.pk}{suffix}"), 404)
    assert "Unknown type 'ticket'" in detail


def test_an_object_the_user_may_not_see_is_404_like_a_missing_one(api_client):
    from core.models import Organisation

    elsewhere = Organisation.objects.create(name="Elsewhere")  # the user is no member
    hidden = factories.make_item(project=factories.make_project(organisation=elsewhere))
    visible = factories.make_item()
    assert api_client.get(f"/api/objects/item/{visible.pk}/").status_code == 200
    missing = _refused(api_client.get(f"/api/objects/item/{hidden.pk + 1000}/"), 404)
    assert _refused(api_client.get(f"/api/objects/item/{hidden.pk}/"), 404) == missing.replace(
        str(hidden.pk + 1000), str(hidden.pk)
    )
    _refused(api_client.get(f"/api/objects/item/{hidden.pk}/related"), 404)


@pytest.mark.parametrize("path", ["/api/", "/api/nope", "/api/search/", "/api/objects/item/1"])
def test_unknown_routes_are_404_json(api_client, path):
    assert "No such endpoint" in _refused(api_client.get(path), 404)


def test_unknown_routes_are_404_json_for_anonymous_callers_too(client, db):
    _refused(client.get("/api/nope"), 404)


@pytest.mark.parametrize("path", ["/api/search?q=x", "/api/openapi.json", "/api/objects/item/1/"])
def test_other_methods_are_405_json_not_a_csrf_page(bearer, db, path):
    response = Client(enforce_csrf_checks=True, headers=bearer).post(path)
    _refused(response, 405)
    assert "GET" in response["Allow"]


def test_an_unknown_route_is_404_json_for_a_post_too(db):
    _refused(Client(enforce_csrf_checks=True).post("/api/nope"), 404)


def test_no_index_to_answer_is_503_with_the_reason(api_client, settings, transactional_db):
    settings.AGIRA_EMBEDDED_ENABLED = False
    settings.AGIRA_QDRANT_ENABLED = False
    factories.make_project()  # something the user may see
    detail = _refused(api_client.get("/api/search", {"q": "basket"}), 503)
    assert "No index is enabled" in detail
