"""The embedder configuration in the admin: a singleton with a write-only API
key, environment overrides shown, and a "Test" that embeds one sentence."""

import pytest
from django.urls import reverse

from core.models import EmbedderConfiguration

pytestmark = pytest.mark.django_db

SECRET = "sk-embed-secret-0815"
CHANGE_URL = reverse("admin:core_embedderconfiguration_change", args=[1])
TEST_URL = reverse("admin:core_embedderconfiguration_test")


def _form(**overrides) -> dict:
    data = {
        "provider": "http",
        "local_model_path": "",
        "http_url": "http://127.0.0.1:9",
        "http_model": "tiny",
        "http_api_key": "",
        "http_dimension": "",
        "batch_size": 32,
        "timeout": 5,
    }
    data.update(overrides)
    return data


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def test_the_api_key_is_write_only_and_never_shown(admin_client):
    response = admin_client.post(CHANGE_URL, _form(http_api_key=SECRET))
    assert response.status_code == 302
    assert EmbedderConfiguration.load().http_api_key == SECRET
    page = admin_client.get(CHANGE_URL).content.decode()
    assert SECRET not in page
    assert "one is stored (it is never shown)" in page
    admin_client.post(CHANGE_URL, _form())  # left empty: kept
    assert EmbedderConfiguration.load().http_api_key == SECRET


def test_the_http_provider_needs_a_url_and_a_model(admin_client):
    response = admin_client.post(CHANGE_URL, _form(http_url="", http_model=""))
    assert response.status_code == 200
    assert "needs an endpoint URL and a model name" in response.content.decode()


def test_test_embeds_a_sentence_with_the_local_model(admin_client):
    response = admin_client.post(TEST_URL, follow=True)
    text = _messages(response)
    assert "all-MiniLM-L6-v2, 384 dimensions" in text
    assert "vector length 1.000" in text


def test_test_says_why_the_endpoint_failed_without_the_key(admin_client, embedding_server):
    embedding_server.set_api_keys(["sk-right"])
    embedding_server.echo_key_in_errors(True)
    admin_client.post(
        CHANGE_URL, _form(http_url=embedding_server.url, http_api_key=SECRET, http_dimension=8)
    )
    text = _messages(admin_client.post(TEST_URL, follow=True))
    assert "rejected the API key" in text
    assert SECRET not in text

    embedding_server.set_api_keys([SECRET])
    text = _messages(admin_client.post(TEST_URL, follow=True))
    assert "tiny, 8 dimensions" in text


def test_environment_overrides_are_listed(admin_client, monkeypatch):
    monkeypatch.setenv("AGIRA_EMBEDDER_PROVIDER", "none")
    page = admin_client.get(CHANGE_URL).content.decode()
    assert "AGIRA_EMBEDDER_PROVIDER" in page
    text = _messages(admin_client.post(TEST_URL, follow=True))
    assert "keyword only" in text
