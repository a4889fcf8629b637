"""Pytest fixtures for the GitHub-shaped test server.

Registered in the root ``conftest.py``::

    pytest_plugins = [..., "core.testing.github_server.pytest_plugin"]

Fixtures:

- ``github_server``: the running :class:`GitHubTestServer` (token ``"test-token"``), clean
  for each test (empty state, clock at 2026-01-01T00:00:00Z, no faults, empty request log,
  token restored). One server serves the whole session (per xdist worker); only its state
  is reset between tests.
- ``github_client``: a real PyGithub ``Github`` pointed at it, closed after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core.testing.github_server.server import GitHubTestServer

TEST_TOKEN = "test-token"  # noqa: S105 - the test server's own token


@pytest.fixture(scope="session")
def github_server_session() -> Iterator[GitHubTestServer]:
    """The session's server; prefer ``github_server``, which also resets it."""
    server = GitHubTestServer(token=TEST_TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def github_server(github_server_session: GitHubTestServer) -> Iterator[GitHubTestServer]:
    github_server_session.reset()
    yield github_server_session
    github_server_session.reset()


def connect(server: GitHubTestServer, **kwargs: Any) -> Any:
    """``github.Github`` for ``server``: its token (if any), its ``base_url``, no pause
    between requests and no retries unless given (``retry=None``: a rate limit raises at
    once instead of sleeping until the reset)."""
    from github import Auth, Github

    if "auth" not in kwargs and server.token is not None:
        kwargs["auth"] = Auth.Token(server.token)
    kwargs.setdefault("base_url", server.base_url)
    kwargs.setdefault("seconds_between_requests", 0)
    kwargs.setdefault("seconds_between_writes", 0)
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("retry", None)
    return Github(**kwargs)


@pytest.fixture
def github_client(github_server: GitHubTestServer) -> Iterator[Any]:
    client = connect(github_server)
    try:
        yield client
    finally:
        client.close()
