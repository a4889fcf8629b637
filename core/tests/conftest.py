import pytest

from core.tests import factories, harness


@pytest.fixture
def user(db):
    """A signed-in person's account: owner of every organisation the test
    makes (factories.default_members), so that what one person does needs no
    membership set-up. Tests of roles make their own users."""
    tester = factories.make_user("tester")
    factories.default_members.append((tester, "owner"))
    yield tester
    factories.default_members.clear()


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


def configure_weaviate(server, settings) -> None:
    """Point Agira at the in-process Weaviate-compatible server, Weaviate alone."""
    from core.models import WeaviateConfiguration

    server.auth.set_api_keys([API_KEY])
    WeaviateConfiguration.objects.update_or_create(
        pk=WeaviateConfiguration.SINGLETON_PK,
        defaults={
            "enabled": True,
            "url": "http://127.0.0.1",
            "http_port": server.http_port,
            "grpc_port": server.grpc_port,
            "api_key": API_KEY,
            "connect_timeout": 2,
            "query_timeout": 5,
            "insert_timeout": 5,
        },
    )
    settings.AGIRA_SYNC_MODE = "queued"
    settings.AGIRA_SYNC_BACKOFF_SECONDS = 0.0
    # Weaviate alone; tests of several targets at once enable the others.
    settings.AGIRA_EMBEDDED_ENABLED = False
    settings.AGIRA_QDRANT_ENABLED = False


@pytest.fixture
def weaviate_sync(weaviate_server, settings, transactional_db):
    """Agira syncing to the in-process Weaviate-compatible server.

    Real commits (transactional_db), so the drain runs after commit as in
    production; the immediate task backend runs it in this process.
    """
    configure_weaviate(weaviate_server, settings)
    return weaviate_server


@pytest.fixture(params=["weaviate", "embedded", "qdrant"])
def sync(request, settings, transactional_db, weaviate_server):
    """Agira syncing to one target, committing for real."""
    settings.AGIRA_SYNC_MODE = "queued"
    settings.AGIRA_SYNC_BACKOFF_SECONDS = 0.0
    if request.param == "weaviate":
        configure_weaviate(weaviate_server, settings)
        yield harness.WeaviateHarness(weaviate_server)
        return
    if request.param == "embedded":
        settings.AGIRA_EMBEDDED_BUSY_TIMEOUT = 0.2
        embedded = harness.EmbeddedHarness(settings.AGIRA_EMBEDDED_PATH)
        yield embedded
        embedded.up()
        return
    # qdrant-client's local mode stands in for a Qdrant server.
    settings.AGIRA_EMBEDDED_ENABLED = False
    settings.AGIRA_QDRANT_ENABLED = True
    settings.AGIRA_QDRANT_LOCK_TIMEOUT = 0.2
    embedded = harness.QdrantHarness(settings.AGIRA_QDRANT_PATH)
    yield embedded
    embedded.up()


@pytest.fixture
def github(github_server, settings, weaviate_sync):
    """The GitHub-shaped test server configured in the admin, with one repository;
    Weaviate (the in-process server) as the index."""
    from core.tests.github_helpers import REPO, configure_github

    configure_github(github_server, settings)
    github_server.add_repo(REPO)
    return github_server


@pytest.fixture
def index(weaviate_sync):
    return harness.WeaviateHarness(weaviate_sync)
