"""Serve the Bolt test server with Agira's graph tables until interrupted.

    python -m core.testing.bolt_server [--port N] [--path DIR] [--password P]

For trying the Neo4j configuration by hand (Admin -> Neo4j configuration, URI
``bolt://127.0.0.1:N``, user ``neo4j``). It prints one line with the URI once it
listens; Ctrl-C or SIGTERM stops it cleanly. Without ``--path`` the graph lives in
a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.testing.bolt_server",
        description="A Bolt 5 server running Cypher on LadybugDB, for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free)")
    parser.add_argument("--path", help="the LadybugDB database (default: a temporary one)")
    parser.add_argument("--user", default="neo4j")
    parser.add_argument("--password", required=True, help="the password clients log in with")
    args = parser.parse_args(argv)

    # The tables are Agira's graph's: its schema comes from the graph target.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agira.settings")
    import django

    django.setup()
    from core.services.index.targets.graph import LADYBUG_SCHEMA
    from core.testing.bolt_server.server import BoltTestServer
    from core.testing.serving import serve_until_stopped

    server = BoltTestServer(
        path=args.path,
        schema=LADYBUG_SCHEMA,
        user=args.user,
        password=args.password,
        host=args.host,
        port=args.port,
    )
    return serve_until_stopped(
        server, lambda: f"Bolt test server on {server.uri} (user {args.user})"
    )


if __name__ == "__main__":
    sys.exit(main())
