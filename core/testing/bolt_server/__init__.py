"""A Bolt 5 server running Cypher on LadybugDB: Neo4j for the official driver,
in the test suite and the benchmarks. See docs/testing.md ("The Bolt test
server") for what it covers."""

from core.testing.bolt_server.server import DEFAULT_VERSION, BoltTestServer, Failure

__all__ = ["DEFAULT_VERSION", "BoltTestServer", "Failure"]
