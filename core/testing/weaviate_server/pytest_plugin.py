"""Pytest fixtures for the Weaviate-compatible test server.

Register once in the root ``conftest.py``::

    pytest_plugins = ["core.testing.weaviate_server.pytest_plugin"]

Fixtures:

- ``weaviate_server``: the running :class:`WeaviateTestServer`, clean for each test (empty
  store, no faults, zeroed counters, configured API keys restored). One server serves the
  whole session (per xdist worker); only its state is reset between tests.
- ``weaviate_client``: a real ``weaviate`` client connected to it, closed after the test.
- ``weaviate_loopback_only``: fails any attempt to resolve or connect to a non-loopback
  address during the test, and points the client's PyPI version check (made by
  ``connect()`` without ``skip_init_checks``) at the test server. Its value is the list of
  blocked attempts, which a test can assert is empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core.testing.weaviate_server.loopback import LoopbackGuard
from core.testing.weaviate_server.server import WeaviateTestServer


@pytest.fixture(scope="session")
def weaviate_server_session() -> Iterator[WeaviateTestServer]:
    """The session's server; prefer ``weaviate_server``, which also resets it."""
    server = WeaviateTestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def weaviate_server(weaviate_server_session: WeaviateTestServer) -> Iterator[WeaviateTestServer]:
    weaviate_server_session.reset()
    yield weaviate_server_session
    # Leave it up and empty even if the test took it down or left faults on.
    weaviate_server_session.reset()


def grpc_test_config() -> Any:
    """gRPC options for clients of the test server: never route loopback through a proxy
    from the environment, and reconnect quickly after a ``down()``/``up()``."""
    from weaviate.config import GrpcConfig

    return GrpcConfig(
        channel_options=[
            ("grpc.enable_http_proxy", 0),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
        ]
    )


def connect(server: WeaviateTestServer, **kwargs: Any) -> Any:
    """``weaviate.connect_to_custom`` for ``server`` (``skip_init_checks=True`` unless
    given), with :func:`grpc_test_config` unless ``additional_config`` is given."""
    import weaviate
    from weaviate.classes.init import AdditionalConfig

    kwargs.setdefault("skip_init_checks", True)
    kwargs.setdefault("additional_config", AdditionalConfig(grpc_config=grpc_test_config()))
    return weaviate.connect_to_custom(**server.connect_kwargs(), **kwargs)


@pytest.fixture
def weaviate_client(weaviate_server: WeaviateTestServer) -> Iterator[Any]:
    client = connect(weaviate_server)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def weaviate_loopback_only(
    monkeypatch: pytest.MonkeyPatch, weaviate_server: WeaviateTestServer
) -> Iterator[list[str]]:
    # connect() without skip_init_checks asks PyPI for the latest client version.
    monkeypatch.setattr(
        "weaviate.connect.v4.PYPI_PACKAGE_URL",
        f"{weaviate_server.url}/pypi/weaviate-client/json",
    )
    with LoopbackGuard() as guard:
        yield guard.blocked
