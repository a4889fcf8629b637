"""Personal tokens: made and shown once, stored hashed, revoked by their owner."""

import hashlib
import re

import pytest
from django.test import Client
from django.urls import reverse

from core.models import ApiToken
from core.services.tokens import api_token_authenticate, api_token_create
from core.tests import factories

PAGE = reverse("core:api-tokens")


def _revoke_url(row: ApiToken) -> str:
    return reverse("core:api-token-revoke", args=[row.pk])


def _api_status(token: str) -> int:
    return Client(headers={"Authorization": f"Bearer {token}"}).get("/api/search?q=").status_code


def test_a_token_is_long_random_and_stored_only_as_its_hash(user):
    row, token = api_token_create(user=user, name="  CI bot ")
    other = api_token_create(user=user, name="CI bot")[1]
    assert token != other
    assert re.fullmatch(r"agira_[A-Za-z0-9_-]{43}", token)
    assert row.name == "CI bot"
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:12]
    stored = ApiToken.objects.filter(pk=row.pk).values().get()
    assert all(token not in str(value) for value in stored.values())


@pytest.mark.parametrize("token", ["", "agira_", "agira_x", "x" * 500, "agira_" + "a" * 43])
def test_what_is_not_a_live_token_authenticates_nobody(db, token):
    assert api_token_authenticate(token=token) is None


def test_the_page_lists_the_users_own_tokens(auth_client, user):
    api_token_create(user=user, name="Laptop agent")
    api_token_create(user=factories.make_user(), name="Someone else's")
    response = auth_client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Laptop agent" in html
    assert "Someone else" not in html
    assert "never" in html
    assert 'id="new-token"' not in html


def test_every_page_links_to_the_tokens(auth_client, db):
    html = auth_client.get(reverse("core:project-list")).content.decode()
    assert f'href="{PAGE}"' in html


def test_creating_a_token_shows_it_once_and_it_works(csrf_client, user):
    page = csrf_client.get(PAGE)
    csrf = page.cookies["csrftoken"].value
    response = csrf_client.post(PAGE, {"name": "Agent", "csrfmiddlewaretoken": csrf})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = re.search(r'value="(agira_[^"]+)"', response.content.decode()).group(1)
    row = ApiToken.objects.get(user=user)
    assert row.name == "Agent"
    assert token.startswith(row.prefix)
    assert _api_status(token) == 200
    # Never again: the list shows the prefix only.
    again = csrf_client.get(PAGE).content.decode()
    assert token not in again
    assert row.prefix in again


def test_creating_needs_csrf(csrf_client, user):
    assert csrf_client.post(PAGE, {"name": "Agent"}).status_code == 403
    assert not ApiToken.objects.exists()


def test_a_token_needs_a_name(auth_client, user):
    response = auth_client.post(PAGE, {"name": "  "})
    assert response.status_code == 200
    assert not ApiToken.objects.exists()
    assert 'id="new-token"' not in response.content.decode()


def test_revoking_is_a_post_and_the_token_then_fails(auth_client, user):
    row, token = api_token_create(user=user, name="Old")
    assert auth_client.get(_revoke_url(row)).status_code == 405
    assert _api_status(token) == 200
    response = auth_client.post(_revoke_url(row))
    assert response.status_code == 302
    assert response.url == PAGE
    row.refresh_from_db()
    assert row.revoked
    assert _api_status(token) == 401
    html = auth_client.get(PAGE).content.decode()
    assert "Revoked" in html
    assert _revoke_url(row) not in html
    # Again: nothing changes.
    assert auth_client.post(_revoke_url(row)).status_code == 302


def test_revoking_needs_csrf(csrf_client, user):
    row, _ = api_token_create(user=user, name="Old")
    assert csrf_client.post(_revoke_url(row)).status_code == 403
    row.refresh_from_db()
    assert not row.revoked


def test_another_users_token_cannot_be_revoked(auth_client, user):
    row, token = api_token_create(user=factories.make_user(), name="Theirs")
    assert auth_client.post(_revoke_url(row)).status_code == 404
    row.refresh_from_db()
    assert not row.revoked
    assert _api_status(token) == 200


def test_the_page_needs_a_login(client, db):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_the_admin_shows_no_secret_and_can_revoke(client, user):
    client.force_login(factories.make_user("boss", is_staff=True, is_superuser=True))
    row, token = api_token_create(user=user, name="Bot")
    change = client.get(reverse("admin:core_apitoken_change", args=[row.pk])).content.decode()
    assert row.key_hash in change
    assert token not in change
    assert 'name="key_hash"' not in change
    assert client.get(reverse("admin:core_apitoken_add")).status_code == 403
    client.post(
        reverse("admin:core_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [row.pk]},
    )
    row.refresh_from_db()
    assert row.revoked
