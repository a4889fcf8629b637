"""The Bolt test server as the official `neo4j` driver sees it: the handshake,
logins, auto-commit and explicit transactions, results in parts, PackStream's
values, failures and the state after them, routing, a server that goes away.
If the driver accepts all this, the Neo4j graph target's tests through it
test the target, not the server."""

import datetime as dt
import socket
import struct

import neo4j
import pytest
from neo4j import exceptions as errors

from core.testing.bolt_server import BoltTestServer
from core.testing.bolt_server.packstream import Structure, pack, unpack_message


def test_the_driver_connects_and_names_the_server(neo4j_driver, bolt_server):
    neo4j_driver.verify_connectivity()
    info = neo4j_driver.get_server_info()
    assert info.agent == "Neo4j/5.26.0"
    assert info.protocol_version == (5, 4)  # the newest the driver and the server share
    assert bolt_server.messages["HELLO"] == bolt_server.messages["LOGON"] >= 1


def test_a_wrong_password_or_user_is_an_auth_error(bolt_server):
    for auth in [(bolt_server.user, "wrong"), ("someone", bolt_server.password)]:
        with (
            neo4j.GraphDatabase.driver(bolt_server.uri, auth=auth) as driver,
            pytest.raises(errors.AuthError, match="authentication failure"),
        ):
            driver.verify_connectivity()


def test_a_client_of_another_major_version_gets_no_version(bolt_server):
    with socket.create_connection(("127.0.0.1", bolt_server.port), timeout=5) as sock:
        sock.sendall(b"\x60\x60\xb0\x17" + bytes.fromhex("00000404 00000003 00000000 00000000"))
        assert sock.recv(4) == b"\x00\x00\x00\x00"
        assert sock.recv(1) == b""  # and closed


def test_values_go_and_come_back_as_they_were(neo4j_driver):
    values = {
        "tiny": 1,
        "negative": -20,
        "int16": 300,
        "int32": 70_000,
        "int64": 2**40,
        "smallest": -(2**63),
        "float": 1.5,
        "long_text": "x" * 70_000,  # more than one chunk
        "unicode": "Zürich € 😀",
        "bytes": b"\x00\x01\xff",
        "yes": True,
        "nothing": None,
        "numbers": [1, 2, 3],
        "map": {"k": 1, "l": [1, 2]},
        "day": dt.date(2026, 12, 2),
        "moment": dt.datetime(2026, 12, 2, 10, 0, 5, 123000),
    }
    for name, value in values.items():
        records = neo4j_driver.execute_query(f"RETURN ${name} AS v", {name: value}).records
        assert records[0]["v"] == value, name
    (duration,) = neo4j_driver.execute_query(
        "RETURN $d AS v", d=dt.timedelta(days=2, seconds=5)
    ).records[0]
    assert (duration.days, duration.seconds) == (2, 5)


def test_nodes_relationships_and_paths_come_back_as_the_drivers_own(neo4j_driver):
    neo4j_driver.execute_query(
        "UNWIND $rows AS r MERGE (n:Item {uuid: r.uuid}) SET n.title = r.title",
        rows=[{"uuid": "i1", "title": "Crash"}],
    )
    neo4j_driver.execute_query("MERGE (p:Project {uuid: 'p1'})")
    neo4j_driver.execute_query(
        "MATCH (n:Item {uuid: 'i1'}), (p:Project {uuid: 'p1'}) MERGE (n)-[:IN_PROJECT]->(p)"
    )
    record = neo4j_driver.execute_query(
        "MATCH path = (n:Item)-[e:IN_PROJECT]->(p:Project) RETURN n, e, p, path"
    ).records[0]
    node, relationship, project, path = record["n"], record["e"], record["p"], record["path"]
    assert isinstance(node, neo4j.graph.Node)
    assert node.labels == {"Item"}
    assert dict(node) == {"uuid": "i1", "title": "Crash"}  # no null properties, as in Neo4j
    assert relationship.type == "IN_PROJECT"
    assert relationship.start_node.element_id == node.element_id
    assert relationship.end_node.element_id == project.element_id
    assert [n["uuid"] for n in path.nodes] == ["i1", "p1"]
    assert [r.type for r in path.relationships] == ["IN_PROJECT"]


def test_results_come_in_parts_of_the_fetch_size(neo4j_driver, bolt_server):
    with neo4j_driver.session(fetch_size=2) as session:
        assert [r["x"] for r in session.run("UNWIND range(1, 5) AS x RETURN x")] == [1, 2, 3, 4, 5]
    assert bolt_server.messages["PULL"] == 3  # 2 + 2 + 1


def test_a_transaction_commits_or_rolls_back(neo4j_driver):
    with neo4j_driver.session() as session:
        with session.begin_transaction() as tx:
            tx.run("MERGE (n:Item {uuid: 'kept'})").consume()
            tx.commit()
        with session.begin_transaction() as tx:
            tx.run("MERGE (n:Item {uuid: 'dropped'})").consume()
            tx.rollback()
        assert session.execute_read(
            lambda tx: [r["u"] for r in tx.run("MATCH (n:Item) RETURN n.uuid AS u")]
        ) == ["kept"]
        assert session.last_bookmarks()  # a commit gives a bookmark


def test_a_failed_statement_fails_its_transaction_and_the_session_goes_on(
    neo4j_driver, bolt_server
):
    with neo4j_driver.session() as session:
        tx = session.begin_transaction()
        tx.run("MERGE (n:Item {uuid: 'half'})").consume()
        with pytest.raises(errors.CypherSyntaxError):
            tx.run("RETURN nope(").consume()
        with pytest.raises(errors.TransactionError):
            tx.run("RETURN 1").consume()
        tx.close()
        assert session.run("MATCH (n:Item) RETURN count(n) AS c").single()["c"] == 0
    assert bolt_server.messages["RESET"] >= 1


def test_errors_carry_neo4js_codes(neo4j_driver):
    with pytest.raises(errors.CypherSyntaxError):
        neo4j_driver.execute_query("MATCH (n RETURN n")
    neo4j_driver.execute_query("CREATE (n:Item {uuid: 'one'})")
    with pytest.raises(errors.ConstraintError):
        neo4j_driver.execute_query("CREATE (n:Item {uuid: 'one'})")
    with pytest.raises(errors.ClientError) as unknown:
        neo4j_driver.execute_query("RETURN 1", database_="elsewhere")
    assert unknown.value.code == "Neo.ClientError.Database.DatabaseNotFound"


def test_the_schema_statements_of_neo4j(neo4j_driver, bolt_server):
    statement = "CREATE CONSTRAINT item_uuid IF NOT EXISTS FOR (n:Item) REQUIRE n.uuid IS UNIQUE"
    neo4j_driver.execute_query(statement)
    neo4j_driver.execute_query(statement)  # if not exists: twice is fine
    with pytest.raises(errors.ClientError, match="already exists"):
        neo4j_driver.execute_query(statement.replace(" IF NOT EXISTS", ""))
    with pytest.raises(errors.DatabaseError, match="primary key"):
        neo4j_driver.execute_query("CREATE CONSTRAINT FOR (n:Item) REQUIRE n.title IS UNIQUE")
    neo4j_driver.execute_query(
        "CREATE INDEX item_parent IF NOT EXISTS FOR (n:Item) ON (n.parent_object_id)"
    )
    assert bolt_server.constraints == {"item_uuid": ("Item", "uuid")}
    assert bolt_server.indexes == {"item_parent": ("Item", "parent_object_id")}


def test_a_routing_address_routes_to_the_server_itself(bolt_server):
    uri = f"neo4j://{bolt_server.address}"
    with neo4j.GraphDatabase.driver(uri, auth=(bolt_server.user, bolt_server.password)) as driver:
        assert driver.execute_query("RETURN 2 AS x").records[0]["x"] == 2
    assert bolt_server.messages["ROUTE"] >= 1


def test_a_server_that_went_away_is_unavailable_and_then_back(neo4j_driver, bolt_server):
    assert neo4j_driver.execute_query("RETURN 1 AS x").records[0]["x"] == 1
    bolt_server.down()
    with pytest.raises(errors.ServiceUnavailable):
        neo4j_driver.execute_query("RETURN 1 AS x")
    bolt_server.up()
    assert neo4j_driver.execute_query("RETURN 4 AS x").records[0]["x"] == 4


def test_a_fault_fails_the_statements_it_names(neo4j_driver, bolt_server):
    bolt_server.fail_statements("Item", times=1)
    with pytest.raises(errors.DatabaseError, match="a fault of the test server"):
        neo4j_driver.execute_query("MATCH (n:Item) RETURN n")
    assert neo4j_driver.execute_query("MATCH (n:Item) RETURN n").records == []


def test_two_writers_take_turns(bolt_server):
    """Two drivers write at once: the second waits for the first's commit
    (one write transaction at a time), nothing is lost."""
    import threading

    auth = (bolt_server.user, bolt_server.password)

    def write(prefix: str) -> None:
        with neo4j.GraphDatabase.driver(bolt_server.uri, auth=auth) as driver:
            for i in range(20):
                driver.execute_query("MERGE (n:Item {uuid: $id})", id=f"{prefix}{i}")

    threads = [threading.Thread(target=write, args=(p,)) for p in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with neo4j.GraphDatabase.driver(bolt_server.uri, auth=auth) as driver:
        assert driver.execute_query("MATCH (n:Item) RETURN count(n) AS c").records[0]["c"] == 40


def test_packstream_reads_what_it_writes():
    value = Structure(0x10, ("RETURN $x", {"x": [1, -129, 40000, 2**33, 1.25, "é" * 300]}, {}))
    chunked = pack(value)
    assert unpack_message(chunked) == value
    assert pack(-16) == b"\xf0"
    assert pack(-17) == b"\xc8\xef"
    assert pack(127) == b"\x7f"
    assert struct.unpack(">q", pack(2**62)[1:]) == (2**62,)


def test_a_server_of_its_own_keeps_its_data_in_its_folder(tmp_path):
    schema = ["CREATE NODE TABLE Thing(uuid STRING PRIMARY KEY)"]
    server = BoltTestServer(path=tmp_path / "g.lbug", schema=schema, password="p").start()
    try:
        with neo4j.GraphDatabase.driver(server.uri, auth=("neo4j", "p")) as driver:
            driver.execute_query("MERGE (t:Thing {uuid: 'x'})")
    finally:
        server.stop()
    assert (tmp_path / "g.lbug").exists()


def test_it_runs_on_its_own_until_stopped(tmp_path):
    """`python -m core.testing.bolt_server`: one line with the URI, then serves
    Agira's graph tables until SIGTERM."""
    import signal
    import subprocess
    import sys

    server = subprocess.Popen(
        [sys.executable, "-m", "core.testing.bolt_server", "--password", "p4ss"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("Bolt test server on bolt://127.0.0.1:")
        uri = line.split()[4]
        with neo4j.GraphDatabase.driver(uri, auth=("neo4j", "p4ss")) as driver:
            driver.execute_query("MERGE (n:Item {uuid: 'x'})")
            assert driver.execute_query("MATCH (n:Item) RETURN count(n) AS c").records[0]["c"] == 1
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    assert out.strip() == "stopped"


def test_a_value_bolt_cannot_carry_is_a_failure_not_a_dropped_connection(neo4j_driver):
    with pytest.raises(errors.DatabaseError, match="does not fit in 64 bits"):
        neo4j_driver.execute_query("RETURN CAST('18446744073709551615' AS UINT64) AS big")
    assert neo4j_driver.execute_query("RETURN 1 AS x").records[0]["x"] == 1


def test_bytes_that_are_no_message_close_the_connection_and_the_server_goes_on(
    neo4j_driver, bolt_server
):
    with socket.create_connection(("127.0.0.1", bolt_server.port), timeout=5) as sock:
        sock.sendall(b"\x60\x60\xb0\x17" + bytes.fromhex("00040405 00000000 00000000 00000000"))
        assert sock.recv(4) == b"\x00\x00\x04\x05"  # 5.4, the newest of 5.0-5.4 offered
        sock.sendall(b"\x00\x02\xdf\x01\x00\x00")  # an unknown PackStream marker
        assert sock.recv(1) == b""  # closed
    assert neo4j_driver.execute_query("RETURN 1 AS x").records[0]["x"] == 1
