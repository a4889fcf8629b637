"""Serve the Weaviate-compatible test server until interrupted.

    python -m core.testing.weaviate_server [--http-port N] [--grpc-port N] [--api-key KEY]

It prints one line with both ports (``http_port=... grpc_port=...``) once it listens, so
a script can start it and read where to connect. Ctrl-C or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import sys

from core.testing.serving import serve_until_stopped
from core.testing.weaviate_server.server import DEFAULT_VERSION, WeaviateTestServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.testing.weaviate_server",
        description="A Weaviate-compatible server (REST + gRPC) for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--http-port", type=int, default=0, help="REST port (0: any free)")
    parser.add_argument("--grpc-port", type=int, default=0, help="gRPC port (0: any free)")
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="require this API key (repeat for several); anonymous access otherwise",
    )
    parser.add_argument("--version", default=DEFAULT_VERSION, help="Weaviate version to report")
    parser.add_argument(
        "--no-auto-schema",
        action="store_true",
        help="refuse writes to unknown collections or properties (AUTOSCHEMA_ENABLED=false)",
    )
    args = parser.parse_args(argv)

    server = WeaviateTestServer(
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        api_keys=args.api_key,
        version=args.version,
        auto_schema=not args.no_auto_schema,
    )
    return serve_until_stopped(
        server,
        lambda: (
            f"Weaviate test server {args.version} on {server.url} "
            f"http_port={server.http_port} grpc_port={server.grpc_port}"
            + (" (API key required)" if args.api_key else "")
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
