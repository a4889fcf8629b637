"""Pytest fixtures for the embeddings test server.

Registered in the root ``conftest.py``::

    pytest_plugins = [..., "core.testing.embedding_server.pytest_plugin"]

Fixtures:

- ``embedding_server``: the running :class:`EmbeddingTestServer` (dimension 8, no API key),
  clean for each test (no faults or delay, empty request log, dimension and keys restored).
  One server serves the whole session (per xdist worker); only its state is reset
  between tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.testing.embedding_server.server import EmbeddingTestServer

DIMENSION = 8


@pytest.fixture(scope="session")
def embedding_server_session() -> Iterator[EmbeddingTestServer]:
    """The session's server; prefer ``embedding_server``, which also resets it."""
    server = EmbeddingTestServer(dimension=DIMENSION)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def embedding_server(
    embedding_server_session: EmbeddingTestServer,
) -> Iterator[EmbeddingTestServer]:
    embedding_server_session.reset()
    yield embedding_server_session
    embedding_server_session.reset()
