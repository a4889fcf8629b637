"""A local server that answers like GitHub's REST API v3, for the GitHub worker's tests and
benchmarks: the real PyGithub talks HTTP to it (``Github(base_url=server.base_url)``).

Fixtures for pytest are in ``core.testing.github_server.pytest_plugin``; ``python -m
core.testing.github_server`` serves a demo repository by hand.
"""

from core.testing.github_server.server import ENTERPRISE_PREFIX, GitHubTestServer
from core.testing.github_server.state import SAME_REPO, START, RequestRecord

__all__ = ["ENTERPRISE_PREFIX", "SAME_REPO", "START", "GitHubTestServer", "RequestRecord"]
