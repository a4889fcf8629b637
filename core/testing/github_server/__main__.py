"""Serve the GitHub-shaped test server with a demo repository until interrupted.

    python -m core.testing.github_server [--port N] [--token TOKEN] [--issues N]

It prints one line with the base URL once it listens. The demo repository ``acme/widgets``
has open and closed issues, a merged pull request that closed one of them (cross-referenced,
with its commit), and a pull request from a deleted fork. Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import sys

from core.testing.github_server.server import GitHubTestServer
from core.testing.serving import serve_until_stopped

DEMO_REPO = "acme/widgets"


def seed(server: GitHubTestServer, issues: int) -> None:
    server.add_repo(DEMO_REPO, description="Widgets for the demo")
    server.add_repo("acme/lib")
    for i in range(1, issues + 1):
        labels = ["bug"] if i % 3 == 0 else ["enhancement"] if i % 3 == 1 else []
        server.add_issue(
            DEMO_REPO, title=f"Demo issue {i}", body=f"Body of issue {i}.", labels=labels
        )
        server.advance(60)
    crash = server.add_issue(
        DEMO_REPO, title="Crash on save", body="Steps: click save.", labels=["bug"]
    )
    fix = server.add_pull(
        DEMO_REPO,
        title="Fix the crash on save",
        body=f"Fixes #{crash}",
        merged=True,
        files=["widgets/save.py", "tests/test_save.py"],
        commits=["Guard against an empty title", "Test the empty title"],
        merge_commit_sha="a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
    )
    server.cross_reference(issue=(DEMO_REPO, crash), pr=(DEMO_REPO, fix))
    server.close_issue(DEMO_REPO, crash, commit_id="a1b2c3d4e5f60718293a4b5c6d7e8f9012345678")
    elsewhere = server.add_pull("acme/lib", title="Faster tokenizer")
    server.cross_reference(issue=(DEMO_REPO, crash), pr=("acme/lib", elsewhere))
    server.add_pull(DEMO_REPO, title="Rewrite everything", state="closed", head_repo=None)
    wish = server.add_issue(DEMO_REPO, title="A wish")
    server.close_issue(DEMO_REPO, wish, state_reason="not_planned")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.testing.github_server",
        description="A local server that answers like GitHub's REST API v3.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free)")
    parser.add_argument("--token", default=None, help="require this token (any accepted otherwise)")
    parser.add_argument("--issues", type=int, default=40, help="plain demo issues to create")
    args = parser.parse_args(argv)

    server = GitHubTestServer(token=args.token, host=args.host, port=args.port)
    return serve_until_stopped(
        server,
        lambda: (
            f"GitHub test server on {server.base_url} (also {server.enterprise_url}) "
            f"port={server.port} repo={DEMO_REPO}" + (" (token required)" if args.token else "")
        ),
        prepare=lambda started: seed(started, args.issues),
    )


if __name__ == "__main__":
    sys.exit(main())
