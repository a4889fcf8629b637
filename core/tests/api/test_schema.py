"""The OpenAPI schema: served to callers of the API, complete, with the caps."""

import json

import pytest


@pytest.fixture
def schema(api_client) -> dict:
    response = api_client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    return json.loads(response.content)


def test_the_schema_has_the_three_endpoints(schema):
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/search",
        "/api/objects/{object_type}/{object_id}/related",
        "/api/objects/{object_type}/{object_id}/",
    }
    assert all(set(path) == {"get"} for path in schema["paths"].values())
    assert schema["components"]["securitySchemes"]["TokenAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }


def test_the_schema_states_the_limits(schema):
    def param(path, name):
        [found] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
        return found["schema"]

    assert param("/api/search", "limit")["maximum"] == 100
    assert param("/api/search", "page")["maximum"] == 50
    assert param("/api/search", "q")["maxLength"] == 1000
    related = "/api/objects/{object_type}/{object_id}/related"
    assert param(related, "limit")["maximum"] == 50
    assert param("/api/search", "mode")["enum"] == ["hybrid", "keyword", "semantic"]


def test_the_schema_is_served_to_a_signed_in_browser(auth_client):
    assert auth_client.get("/api/openapi.json").json()["info"]["title"] == "Agira API"
