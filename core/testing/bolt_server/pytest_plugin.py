"""Pytest fixtures for the Bolt test server.

Registered in the root ``conftest.py``. Fixtures:

- ``bolt_server``: the running :class:`BoltTestServer`, with the graph's tables
  declared, clean for each test (empty graph, no faults, nothing counted). One
  server serves the whole session; only its state is reset between tests.
- ``neo4j_driver``: the real ``neo4j`` driver logged in to it, closed after the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.testing.bolt_server.server import BoltTestServer


@pytest.fixture(scope="session")
def bolt_server_session() -> Iterator[BoltTestServer]:
    """The session's server; prefer ``bolt_server``, which also resets it."""
    from core.services.index.targets.graph import LADYBUG_SCHEMA

    server = BoltTestServer(schema=LADYBUG_SCHEMA).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bolt_server(bolt_server_session: BoltTestServer) -> Iterator[BoltTestServer]:
    bolt_server_session.reset()
    yield bolt_server_session
    bolt_server_session.reset()  # up and empty again, whatever the test did


@pytest.fixture
def neo4j_driver(bolt_server: BoltTestServer):
    import neo4j

    driver = neo4j.GraphDatabase.driver(
        bolt_server.uri,
        auth=(bolt_server.user, bolt_server.password),
        max_transaction_retry_time=1,
        connection_timeout=2,
    )
    yield driver
    driver.close()
