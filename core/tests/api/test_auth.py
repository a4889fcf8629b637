"""Who may call the API: a token, or a signed-in browser; nobody else."""

import logging

import pytest
from django.test import Client
from django.urls import reverse

from core.models import ApiToken
from core.services.tokens import api_token_revoke

ENDPOINTS = [
    "/api/search?q=basket",
    "/api/objects/item/1/related",
    "/api/objects/item/1/",
    "/api/openapi.json",
]


@pytest.fixture
def logs(caplog):
    """Every record of Agira's and Django's loggers (they do not propagate to
    the root logger, where caplog listens)."""
    caplog.set_level(logging.DEBUG)
    for name in ("agira", "django"):
        logger = logging.getLogger(name)
        logger.addHandler(caplog.handler)
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    for name in ("agira", "django"):
        logging.getLogger(name).removeHandler(caplog.handler)


@pytest.mark.parametrize("url", ENDPOINTS)
def test_anonymous_callers_get_401_json_not_the_login_page(client, db, url):
    response = client.get(url)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "Authorization: Bearer" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_token_signs_in(api_client, user):
    response = api_client.get("/api/search", {"q": ""})
    assert response.status_code == 200, response.content
    assert response.json()["hits"] == []


def test_a_token_records_when_it_was_used(api_client, user):
    row = ApiToken.objects.get(user=user)
    assert row.last_used_at is None
    api_client.get("/api/search", {"q": ""})
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_a_signed_in_browser_needs_no_token(auth_client):
    response = auth_client.get("/api/search", {"q": ""})
    assert response.status_code == 200
    assert response.json()["page"] == 1


def test_a_revoked_token_is_refused(api_client, user, token):
    api_token_revoke(user=user, token_id=ApiToken.objects.get(user=user).pk)
    response = api_client.get("/api/search", {"q": ""})
    assert response.status_code == 401
    assert response.json() == {"detail": "The token is unknown or revoked."}


def test_a_deactivated_users_token_is_refused(api_client, user):
    user.is_active = False
    user.save()
    assert api_client.get("/api/search", {"q": ""}).status_code == 401


@pytest.mark.parametrize("header", ["Bearer {wrong}", "Token {token}", "Basic {token}", "{token}"])
def test_a_wrong_token_is_refused_and_never_echoed_or_logged(db, token, logs, settings, header):
    # DEBUG on: ninja's own bearer class would log a malformed header then.
    settings.DEBUG = True
    wrong = token[:-4] + "abcd"
    value = header.format(token=token, wrong=wrong)
    response = Client(headers={"Authorization": value}).get("/api/search", {"q": "x"})
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    body = response.content.decode()
    for secret in (token, wrong, token[len("agira_") :]):
        assert secret not in body
        assert secret not in logs.text
        assert all(secret not in str(record.args) for record in logs.records)


def test_a_wrong_token_beside_a_session_is_still_refused(auth_client):
    response = auth_client.get(
        "/api/search", {"q": "x"}, headers={"Authorization": "Bearer agira_nope"}
    )
    assert response.status_code == 401


def test_the_docs_page_is_for_signed_in_people(db, auth_client):
    docs = reverse("api:openapi-view")
    assert docs == "/api/docs"
    anonymous = Client().get(docs)
    assert anonymous.status_code == 302
    assert anonymous.url.startswith(reverse("login"))
    page = auth_client.get(docs)
    assert page.status_code == 200
    assert b"/api/openapi.json" in page.content
    # Swagger UI from Agira's own static files, not a CDN: works offline.
    assert b"/static/ninja/swagger-ui-bundle.js" in page.content


def test_the_schema_answers_a_token(api_client):
    assert api_client.get("/api/openapi.json").status_code == 200
