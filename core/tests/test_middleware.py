"""/health/ answers without a login, an allowed Host or HTTPS, and only says whether
the database answers (test_deploy_settings.py calls it through a real gunicorn)."""

from types import SimpleNamespace

import pytest
from django.db import OperationalError


@pytest.fixture
def production_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["agira.example.com"]


@pytest.mark.django_db
def test_health_answers_plain_http_from_any_host(client, production_https):
    response = client.get("/health/", HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    # The same request for a page is redirected (or refused for its Host).
    assert client.get("/accounts/login/", HTTP_HOST="agira.example.com").status_code == 301


def test_health_is_503_when_the_database_does_not_answer(client, monkeypatch, production_https):
    def refuse():
        raise OperationalError("connection refused")

    monkeypatch.setattr("core.middleware.connection", SimpleNamespace(ensure_connection=refuse))
    response = client.get("/health/", HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 503


@pytest.mark.django_db
def test_other_methods_and_paths_go_through_the_usual_checks(client, production_https):
    assert client.post("/health/", HTTP_HOST="agira.example.com").status_code == 301
    assert client.get("/health", HTTP_HOST="agira.example.com").status_code == 301
