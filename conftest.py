import pytest
from django.db import connection

pytest_plugins = [
    "core.testing.weaviate_server.pytest_plugin",
    "core.testing.github_server.pytest_plugin",
    "core.testing.embedding_server.pytest_plugin",
    "core.testing.bolt_server.pytest_plugin",
]


def pytest_collection_modifyitems(config, items):
    # Row locks and concurrent workers behave differently on SQLite; those
    # tests prove their guarantees on PostgreSQL (CI runs the suite on both).
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... to run")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Uploaded files, the embedded index and the reconcile's index mirror of a test
    go to its own folder, never to var/."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.AGIRA_QDRANT_PATH = str(tmp_path / "qdrant")
    settings.AGIRA_EMBEDDED_PATH = str(tmp_path / "index" / "agira.db")
    settings.AGIRA_GRAPH_PATH = str(tmp_path / "graph" / "agira.lbug")
    settings.AGIRA_RECONCILE_CACHE_DIR = str(tmp_path / "reconcile")


@pytest.fixture(autouse=True)
def _inline_drains(settings):
    """A save's drain runs in the test's own thread (with the inline task
    backend), so a test can assert on the index right after the save."""
    settings.AGIRA_SYNC_INLINE = True


@pytest.fixture(autouse=True)
def _no_graph(settings):
    """The graph is a target of its own: the tests of the index targets leave
    it out, its tests turn it on."""
    settings.AGIRA_GRAPH_ENABLED = False


@pytest.fixture(autouse=True)
def _no_periodic_index_check(settings):
    """The check for an index that lost its objects runs from drains every
    minute; tests that empty an index behind Agira's back to see what the
    reconcile does would otherwise race it. Its own tests turn it on."""
    settings.AGIRA_SYNC_INDEX_CHECK_SECONDS = 0


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 is slow by design; tests only need a hash that checks.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _close_index_clients():
    """No client outlives its test (the suite treats ResourceWarning as an error)."""
    yield
    from core.services.index import tasks
    from core.services.index.engine import reset_breakers, reset_enqueue_window
    from core.services.index.targets.embedded import close_embedded
    from core.services.index.targets.graph import close_graph
    from core.services.index.targets.neo4j import close_neo4j
    from core.services.index.targets.qdrant import close_qdrant
    from core.services.index.targets.weaviate import close_weaviate

    close_weaviate()
    close_qdrant()
    close_embedded()
    close_graph()
    close_neo4j()
    reset_breakers()
    reset_enqueue_window()
    tasks._retry_scheduled_until = None
