import pytest

from core.tests import factories


@pytest.fixture
def user(db):
    return factories.make_user("tester")


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def csrf_client(user):
    """A client that enforces CSRF like a browser would see it."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.fixture
def item(db):
    return factories.make_item()


API_KEY = "test-api-key-4f9a"


@pytest.fixture
def weaviate_sync(weaviate_server, settings, transactional_db):
    """Agira syncing to the in-process Weaviate-compatible server.

    Real commits (transactional_db), so the drain runs after commit as in
    production; the immediate task backend runs it in this process.
    """
    from core.models import WeaviateConfiguration

    weaviate_server.auth.set_api_keys([API_KEY])
    WeaviateConfiguration.objects.update_or_create(
        pk=WeaviateConfiguration.SINGLETON_PK,
        defaults={
            "enabled": True,
            "url": "http://127.0.0.1",
            "http_port": weaviate_server.http_port,
            "grpc_port": weaviate_server.grpc_port,
            "api_key": API_KEY,
            "connect_timeout": 2,
            "query_timeout": 5,
            "insert_timeout": 5,
        },
    )
    settings.AGIRA_SYNC_MODE = "queued"
    settings.AGIRA_SYNC_BACKOFF_SECONDS = 0.0
    return weaviate_server
