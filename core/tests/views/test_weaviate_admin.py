"""The Weaviate configuration in the admin: a singleton, a write-only API key,
environment overrides shown, and a "Test connection" that says what happened."""

import pytest
from django.urls import reverse

from core.models import WeaviateConfiguration
from core.tests import factories

pytestmark = pytest.mark.django_db

SECRET = "sk-very-secret-4711"


def _form(**overrides) -> dict:
    data = {
        "enabled": "on",
        "url": "http://127.0.0.1",
        "http_port": 8080,
        "grpc_port": 50051,
        "api_key": "",
        "collection_name": "AgiraObject",
        "connect_timeout": 2,
        "query_timeout": 5,
        "insert_timeout": 5,
        "vectorizer": "agira",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


CHANGE_URL = reverse("admin:core_weaviateconfiguration_change", args=[1])


def test_the_list_goes_straight_to_the_one_configuration(admin_client):
    response = admin_client.get(reverse("admin:core_weaviateconfiguration_changelist"))
    assert response.status_code == 302
    assert response.url == CHANGE_URL
    assert admin_client.get(CHANGE_URL).status_code == 200


def test_the_api_key_is_write_only(admin_client):
    admin_client.post(CHANGE_URL, _form(api_key=SECRET))
    assert WeaviateConfiguration.load().api_key == SECRET
    page = admin_client.get(CHANGE_URL).content.decode()
    assert SECRET not in page
    assert "API key: one is stored (it is never shown)" in page

    # Saving other fields with the key left empty keeps it.
    admin_client.post(CHANGE_URL, _form(http_port=8081))
    config = WeaviateConfiguration.load()
    assert (config.http_port, config.api_key) == (8081, SECRET)

    admin_client.post(CHANGE_URL, _form(clear_api_key="on"))
    assert WeaviateConfiguration.load().api_key == ""


def test_a_url_without_scheme_is_a_form_error(admin_client):
    response = admin_client.post(CHANGE_URL, _form(url="weaviate.internal"))
    assert "Start the URL with http:// or https://." in response.content.decode()


def test_environment_overrides_are_shown_and_win(admin_client, monkeypatch):
    from core.services.index import weaviate_settings

    WeaviateConfiguration.objects.update_or_create(pk=1, defaults={"http_port": 8080})
    monkeypatch.setenv("AGIRA_WEAVIATE_HTTP_PORT", "9999")
    monkeypatch.setenv("AGIRA_WEAVIATE_API_KEY", SECRET)
    effective = weaviate_settings()
    assert effective.http_port == 9999
    assert effective.overridden == {"http_port", "api_key"}
    assert SECRET not in repr(effective)
    page = admin_client.get(CHANGE_URL).content.decode()
    assert "AGIRA_WEAVIATE_HTTP_PORT" in page
    assert SECRET not in page


def test_test_connection_reports_version_and_readiness(admin_client, weaviate_server):
    WeaviateConfiguration.objects.update_or_create(
        pk=1,
        defaults={
            "url": "http://127.0.0.1",
            "http_port": weaviate_server.http_port,
            "grpc_port": weaviate_server.grpc_port,
        },
    )
    response = admin_client.post(reverse("admin:core_weaviateconfiguration_test"), follow=True)
    text = response.content.decode()
    assert "Connected to Weaviate 1." in text
    assert ": ready; collection AgiraObject holds 0 objects." in text


def test_test_connection_says_exactly_why_it_failed(admin_client, weaviate_server):
    weaviate_server.auth.set_api_keys(["the-right-key"])
    WeaviateConfiguration.objects.update_or_create(
        pk=1,
        defaults={
            "url": "http://127.0.0.1",
            "http_port": weaviate_server.http_port,
            "grpc_port": weaviate_server.grpc_port,
            "api_key": SECRET,
        },
    )
    text = admin_client.post(
        reverse("admin:core_weaviateconfiguration_test"), follow=True
    ).content.decode()
    assert "rejected the API key (401 Unauthorized)" in text
    assert SECRET not in text

    weaviate_server.down()
    text = admin_client.post(
        reverse("admin:core_weaviateconfiguration_test"), follow=True
    ).content.decode()
    assert f"Could not connect to Weaviate at http://127.0.0.1:{weaviate_server.http_port}" in text


def test_test_connection_is_a_post_for_staff_only(client, admin_client):
    url = reverse("admin:core_weaviateconfiguration_test")
    assert admin_client.get(url).status_code == 302  # GET does nothing
    client.force_login(factories.make_user("plain"))
    response = client.post(url)
    assert response.status_code == 302
    assert "/admin/login/" in response.url
