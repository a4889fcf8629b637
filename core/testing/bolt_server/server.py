"""A Bolt 5 server that runs Cypher on LadybugDB: Neo4j as the official
`neo4j` driver sees it, for the test suite and the benchmarks.

What it speaks (see docs/testing.md, "The Bolt test server"):

- the handshake: the magic preamble, four version proposals, Bolt 5.1 to 5.4
  chosen (the newest the driver offers in that range), or none and the socket
  closed;
- messages in chunks; HELLO, then LOGON with basic auth (wrong credentials are
  a `Neo.ClientError.Security.Unauthorized` FAILURE and a closed connection),
  LOGOFF, RUN, PULL and DISCARD (in parts of `n` records, `has_more`), BEGIN,
  COMMIT, ROLLBACK, RESET, ROUTE (itself as the only router, reader and
  writer, for `neo4j://` addresses), TELEMETRY, GOODBYE; after a FAILURE every
  message but RESET and GOODBYE is IGNORED, as the protocol's state machine says;
- PackStream values both ways, LadybugDB's nodes, relationships and paths as
  Bolt's structures (with element ids), and its errors as Neo4j's codes;
- `CREATE CONSTRAINT ... REQUIRE n.p IS UNIQUE` and `CREATE INDEX ... ON (n.p)`
  (Neo4j's schema statements), accepted where the table exists and, for a
  constraint, `p` is its primary key: LadybugDB declares its tables up front,
  so the server is started with their statements (`schema`).

One write transaction at a time (LadybugDB's rule), in arrival order: a writer
waits for the one before it, up to `lock_timeout`, then fails with a transient
error the driver's managed transactions retry. Reads run beside writes.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import socket
import struct
import tempfile
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .packstream import PackStreamError, Structure, from_structure, pack, unpack_message

logger = logging.getLogger("agira.testing.bolt")

MAGIC = b"\x60\x60\xb0\x17"
MAJOR, LOWEST_MINOR, HIGHEST_MINOR = 5, 1, 4
DEFAULT_VERSION = "5.26.0"

HELLO, GOODBYE, RESET, RUN, BEGIN, COMMIT, ROLLBACK = 0x01, 0x02, 0x0F, 0x10, 0x11, 0x12, 0x13
DISCARD, PULL, TELEMETRY, ROUTE, LOGON, LOGOFF = 0x2F, 0x3F, 0x54, 0x66, 0x6A, 0x6B
SUCCESS, RECORD, IGNORED, FAILURE = 0x70, 0x71, 0x7E, 0x7F
NAMES = {
    HELLO: "HELLO",
    GOODBYE: "GOODBYE",
    RESET: "RESET",
    RUN: "RUN",
    BEGIN: "BEGIN",
    COMMIT: "COMMIT",
    ROLLBACK: "ROLLBACK",
    DISCARD: "DISCARD",
    PULL: "PULL",
    TELEMETRY: "TELEMETRY",
    ROUTE: "ROUTE",
    LOGON: "LOGON",
    LOGOFF: "LOGOFF",
}

# The states of a connection (Bolt's server state machine).
CONNECTED, AUTHENTICATION, READY, STREAMING = "CONNECTED", "AUTHENTICATION", "READY", "STREAMING"
TX_READY, TX_STREAMING, FAILED = "TX_READY", "TX_STREAMING", "FAILED"

CONSTRAINT = re.compile(
    r"^\s*CREATE\s+CONSTRAINT\s+(?:(?P<name>\w+)\s+)?(?P<if>IF\s+NOT\s+EXISTS\s+)?"
    r"FOR\s+\((?P<var>\w+):(?P<label>\w+)\)\s+REQUIRE\s+(?P=var)\.(?P<prop>\w+)\s+IS\s+UNIQUE\s*$",
    re.IGNORECASE,
)
INDEX = re.compile(
    r"^\s*CREATE\s+INDEX\s+(?:(?P<name>\w+)\s+)?(?P<if>IF\s+NOT\s+EXISTS\s+)?"
    r"FOR\s+\((?P<var>\w+):(?P<label>\w+)\)\s+ON\s+\((?P=var)\.(?P<prop>\w+)\)\s*$",
    re.IGNORECASE,
)


class Failure(Exception):
    """A FAILURE the server sends: Neo4j's status code and a message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def classify(error: Exception) -> Failure:
    """LadybugDB's error as the Neo4j status the driver knows it by."""
    message = str(error)
    lowered = message.lower()
    if message.startswith("Parser exception") or ("function" in lowered and "not exist" in lowered):
        code = "Neo.ClientError.Statement.SyntaxError"
    elif "data type" in lowered and message.startswith("Binder exception"):
        code = "Neo.ClientError.Statement.TypeError"
    elif message.startswith(("Binder exception", "Catalog exception")):
        code = "Neo.ClientError.Statement.SemanticError"
    elif "primary key" in lowered and ("duplicat" in lowered or "uniqueness" in lowered):
        code = "Neo.ClientError.Schema.ConstraintValidationFailed"
    elif "read only" in lowered or "read-only" in lowered:
        code = "Neo.ClientError.Statement.AccessMode"
    elif "write transaction" in lowered:
        code = "Neo.TransientError.Transaction.LockClientStopped"
    else:
        code = "Neo.DatabaseError.Statement.ExecutionFailed"
    return Failure(code, message)


@dataclass
class Fault:
    containing: str
    code: str
    message: str
    times: int | None  # None: every time


@dataclass
class _Result:
    fields: list[str]
    rows: list[list]
    kind: str  # "r", "w" or "rw", as Neo4j's summary says


class BoltTestServer:
    """The server, on 127.0.0.1 and a free port unless told otherwise, with
    its database in `path` (a temporary folder, removed on `stop()`, if none)."""

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        schema: tuple[str, ...] | list[str] = (),
        user: str = "neo4j",
        password: str = "agira-test-password",  # noqa: S107 - a test server's own
        database: str = "neo4j",
        version: str = DEFAULT_VERSION,
        host: str = "127.0.0.1",
        port: int = 0,
        lock_timeout: float = 10.0,
    ):
        self._own_folder = None if path else tempfile.mkdtemp(prefix="agira-bolt-")
        self.path = Path(path) if path else Path(self._own_folder) / "graph.lbug"
        self.schema = list(schema)
        self.user, self.password, self.database, self.version = user, password, database, version
        self.host, self.port = host, port
        self.lock_timeout = lock_timeout
        self.messages: Counter[str] = Counter()
        self.statements: list[str] = []
        self.constraints: dict[str, tuple[str, str]] = {}
        self.indexes: dict[str, tuple[str, str]] = {}
        self.faults: list[Fault] = []
        self.writer = threading.Lock()  # one write transaction at a time
        self._state_lock = threading.Lock()
        self._db = None
        self._listener: socket.socket | None = None
        self._connections: set[_Connection] = set()
        self._numbers = iter(range(1, 1 << 62))
        self._bookmarks = iter(range(1, 1 << 62))

    # -- life ------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        return f"bolt://{self.address}"

    def start(self) -> BoltTestServer:
        import ladybug

        self._db = ladybug.Database(str(self.path))
        conn = ladybug.Connection(self._db)
        for statement in self.schema:
            conn.execute(statement)
        conn.close()
        self.up()
        return self

    def up(self) -> None:
        """Listen (again, on the same port after a `down()`)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Stop listening and drop every connection: a server that went away."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._state_lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        for connection in connections:
            connection.join(timeout=10)

    def stop(self) -> None:
        self.down()
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._own_folder:
            shutil.rmtree(self._own_folder, ignore_errors=True)

    def reset(self) -> None:
        """An empty graph, no faults, nothing counted; the schema kept."""
        self.faults.clear()
        if self._listener is None:
            self.up()
        import ladybug

        with self._writing():
            conn = ladybug.Connection(self._db)
            try:
                conn.execute("MATCH (n) DETACH DELETE n")
            finally:
                conn.close()
        self.messages.clear()
        self.statements.clear()
        self.constraints.clear()
        self.indexes.clear()

    def fail_statements(
        self,
        containing: str,
        *,
        code: str = "Neo.DatabaseError.General.UnknownError",
        message: str = "The statement failed (a fault of the test server).",
        times: int | None = None,
    ) -> None:
        """Fail the statements whose text contains `containing`, `times` times
        (None: until `reset()`)."""
        self.faults.append(Fault(containing, code, message, times))

    def _fault_for(self, query: str) -> Fault | None:
        with self._state_lock:
            for fault in self.faults:
                if fault.containing in query and fault.times != 0:
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    @contextlib.contextmanager
    def _writing(self):
        if not self.writer.acquire(timeout=self.lock_timeout):
            raise Failure(
                "Neo.TransientError.Transaction.LockClientStopped",
                f"Another transaction has written for more than {self.lock_timeout:g} s.",
            )
        try:
            yield
        finally:
            self.writer.release()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _address = listener.accept()
            except OSError:
                return  # down() or stop()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(self, sock, next(self._numbers))
            with self._state_lock:
                self._connections.add(connection)
            connection.start()

    def _forget(self, connection: _Connection) -> None:
        with self._state_lock:
            self._connections.discard(connection)

    def next_bookmark(self) -> str:
        return f"FB:agira-test:{next(self._bookmarks)}"

    def routing_table(self, database: str | None) -> dict:
        servers = [
            {"addresses": [self.address], "role": role} for role in ("ROUTE", "READ", "WRITE")
        ]
        return {"rt": {"ttl": 300, "db": database or self.database, "servers": servers}}

    # -- Neo4j's schema statements ------------------------------------------------------
    def schema_statement(self, conn, query: str) -> bool:
        """Run `query` if it is a CREATE CONSTRAINT or CREATE INDEX; False if not."""
        for pattern, store, kind in (
            (CONSTRAINT, self.constraints, "constraint"),
            (INDEX, self.indexes, "index"),
        ):
            found = pattern.match(query)
            if not found:
                continue
            label, prop = found["label"], found["prop"]
            name = found["name"] or f"{kind}_{label}_{prop}".lower()
            if name in store:
                if found["if"]:
                    return True
                raise Failure(
                    "Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists",
                    f"An equivalent {kind} already exists: {name}.",
                )
            columns = _columns(conn, label)
            if prop not in columns or (kind == "constraint" and not columns[prop]):
                raise Failure(
                    "Neo.DatabaseError.Schema.ConstraintCreationFailed"
                    if kind == "constraint"
                    else "Neo.DatabaseError.Schema.IndexCreationFailed",
                    f"This server keeps a {kind} on {label}.{prop} only where the table "
                    f"{label} is declared with {prop}"
                    + (" as its primary key." if kind == "constraint" else "."),
                )
            store[name] = (label, prop)
            return True
        return False


def _columns(conn, label: str) -> dict[str, bool]:
    """The columns of a node table and whether each is the primary key."""
    try:
        result = conn.execute(f"CALL table_info('{label}') RETURN *")
    except RuntimeError:
        return {}
    columns = {}
    names = result.get_column_names()
    while result.has_next():
        row = dict(zip(names, result.get_next(), strict=True))
        columns[row["name"]] = bool(row.get("primary key"))
    return columns


# -- values --------------------------------------------------------------------------
def _node_id(internal: dict) -> tuple[int, str]:
    table, offset = internal["table"], internal["offset"]
    return (table << 40) | offset, f"{table}:{offset}"


def _properties(value: dict) -> dict:
    # Neo4j keeps no null properties: a property set to null is gone.
    return {k: to_bolt(v) for k, v in value.items() if not k.startswith("_") and v is not None}


def _node(value: dict) -> Structure:
    number, element = _node_id(value["_ID"])
    return Structure(ord("N"), (number, [value["_LABEL"]], _properties(value), element))


def _relationship(value: dict) -> Structure:
    number, element = _node_id(value["_ID"])
    start, start_element = _node_id(value["_SRC"])
    end, end_element = _node_id(value["_DST"])
    return Structure(
        ord("R"),
        (
            number,
            start,
            end,
            value["_LABEL"],
            _properties(value),
            element,
            start_element,
            end_element,
        ),
    )


def _path(value: dict) -> Structure:
    nodes, relationships = value["_NODES"], value["_RELS"]
    sequence = []
    for i, relationship in enumerate(relationships):
        forward = relationship["_SRC"] == nodes[i]["_ID"]
        sequence += [i + 1 if forward else -(i + 1), i + 1]
    unbound = [
        Structure(
            ord("r"),
            (
                _node_id(r["_ID"])[0],
                r["_LABEL"],
                _properties(r),
                _node_id(r["_ID"])[1],
            ),
        )
        for r in relationships
    ]
    return Structure(ord("P"), ([_node(n) for n in nodes], unbound, sequence))


def to_bolt(value):
    """A value LadybugDB returned, as Bolt sends it."""
    if isinstance(value, dict):
        if "_NODES" in value and "_RELS" in value:
            return _path(value)
        if "_ID" in value and "_LABEL" in value:
            return _relationship(value) if "_SRC" in value else _node(value)
        return {str(k): to_bolt(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_bolt(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def from_bolt(value):
    """A parameter as LadybugDB takes it."""
    if isinstance(value, Structure):
        return from_structure(value)
    if isinstance(value, list):
        return [from_bolt(v) for v in value]
    if isinstance(value, dict):
        return {k: from_bolt(v) for k, v in value.items()}
    return value


# -- one connection -------------------------------------------------------------------
class _Connection(threading.Thread):
    def __init__(self, server: BoltTestServer, sock: socket.socket, number: int):
        super().__init__(daemon=True, name=f"bolt-{number}")
        self.server = server
        self.sock = sock
        self.id = f"bolt-{number}"
        self.state = CONNECTED
        self.conn = None  # LadybugDB's, opened after LOGON
        self.results: dict[int, _Result] = {}
        self.last_qid = -1
        self.qids = iter(range(1 << 62))
        self.writing = False  # holds the server's writer lock (a write transaction)
        self.in_transaction = False
        self._closed = threading.Event()

    # -- the wire ----------------------------------------------------------------------
    def _read(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the client closed the connection")
            data += chunk
        return bytes(data)

    def _message(self) -> bytes:
        data = bytearray()
        while True:
            (size,) = struct.unpack(">H", self._read(2))
            if size == 0:
                if data:
                    return bytes(data)
                continue  # a NOOP between messages
            data += self._read(size)

    def send(self, tag: int, *fields) -> None:
        payload = pack(Structure(tag, fields))
        out = bytearray()
        for start in range(0, len(payload), 0xFFFF):
            chunk = payload[start : start + 0xFFFF]
            out += struct.pack(">H", len(chunk)) + chunk
        out += b"\x00\x00"
        self.sock.sendall(out)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- the life of a connection ------------------------------------------------------
    def run(self) -> None:
        try:
            if self._handshake():
                while not self._closed.is_set():
                    self._handle(self._message())
        except (OSError, ConnectionError):
            pass  # the client went away, or down()
        except PackStreamError as exc:
            logger.warning("%s: %s; the connection is closed", self.id, exc)
        finally:
            self._end()

    def _end(self) -> None:
        self._finish_transaction("ROLLBACK")
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.close()
        self.server._forget(self)

    def _handshake(self) -> bool:
        if self._read(4) != MAGIC:
            return False
        proposals = self._read(16)
        chosen = None
        for i in range(0, 16, 4):
            _, span, minor, major = proposals[i : i + 4]
            if major != MAJOR:
                continue  # another major version, or the manifest handshake (0xFF)
            highest = min(minor, HIGHEST_MINOR)
            if highest >= LOWEST_MINOR and highest >= minor - span:
                chosen = highest
                break
        if chosen is None:
            self.sock.sendall(b"\x00\x00\x00\x00")
            return False
        self.sock.sendall(bytes((0, 0, chosen, MAJOR)))
        return True

    def _handle(self, data: bytes) -> None:
        message = unpack_message(data)
        name = NAMES.get(message.tag, f"0x{message.tag:02X}")
        self.server.messages[name] += 1
        if message.tag == GOODBYE:
            self._closed.set()
            return
        if message.tag == RESET:
            self._reset()
            self.send(SUCCESS, {})
            return
        if self.state == FAILED:
            self.send(IGNORED)
            return
        handler = getattr(self, f"_on_{name.lower()}", None)
        try:
            if handler is None:
                raise Failure("Neo.ClientError.Request.Invalid", f"Unknown message {name}.")
            handler(*message.fields)
        except Failure as failure:
            self.send(FAILURE, {"code": failure.code, "message": failure.message})
            if failure.code == "Neo.ClientError.Security.Unauthorized":
                self._closed.set()  # Neo4j closes the connection after a failed login
            elif self.state != CONNECTED:
                self.state = FAILED
        except PackStreamError as exc:  # a value with no Bolt form, e.g. an integer of 128 bits
            self.send(
                FAILURE,
                {"code": "Neo.DatabaseError.General.UnknownError", "message": f"{name}: {exc}"},
            )
            self.state = FAILED
        except TypeError as exc:  # a message with the wrong fields
            self.send(
                FAILURE,
                {"code": "Neo.ClientError.Request.Invalid", "message": f"{name}: {exc}"},
            )
            self.state = FAILED

    def _expect(self, name: str, *states: str) -> None:
        if self.state not in states:
            raise Failure(
                "Neo.ClientError.Request.Invalid",
                f"Message {name} cannot be handled by a session in the {self.state} state.",
            )

    # -- messages ----------------------------------------------------------------------
    def _on_hello(self, extra: dict) -> None:
        self._expect("HELLO", CONNECTED)
        if not isinstance(extra, dict) or "user_agent" not in extra:
            raise Failure("Neo.ClientError.Request.Invalid", "HELLO needs a user_agent.")
        self.state = AUTHENTICATION
        self.send(
            SUCCESS,
            {"server": f"Neo4j/{self.server.version}", "connection_id": self.id, "hints": {}},
        )

    def _on_logon(self, auth: dict) -> None:
        self._expect("LOGON", AUTHENTICATION)
        server = self.server
        if not (
            auth.get("scheme") == "basic"
            and auth.get("principal") == server.user
            and auth.get("credentials") == server.password
        ):
            raise Failure(
                "Neo.ClientError.Security.Unauthorized",
                "The client is unauthorized due to authentication failure.",
            )
        import ladybug

        self.conn = ladybug.Connection(server._db)
        self.state = READY
        self.send(SUCCESS, {})

    def _on_logoff(self) -> None:
        self._expect("LOGOFF", READY)
        self.state = AUTHENTICATION
        self.send(SUCCESS, {})

    def _on_telemetry(self, _api: int) -> None:
        self._expect("TELEMETRY", READY)
        self.send(SUCCESS, {})

    def _on_route(self, _routing: dict, _bookmarks: list, extra: dict | None) -> None:
        self._expect("ROUTE", READY)
        database = (extra or {}).get("db")
        self._check_database(database)
        self.send(SUCCESS, self.server.routing_table(database))

    def _check_database(self, database: str | None) -> None:
        if database not in (None, self.server.database):
            raise Failure(
                "Neo.ClientError.Database.DatabaseNotFound",
                f"Database does not exist. Database name: '{database}'.",
            )

    def _on_begin(self, extra: dict) -> None:
        self._expect("BEGIN", READY)
        self._check_database(extra.get("db"))
        read_only = extra.get("mode") == "r"
        if not read_only:
            if not self.server.writer.acquire(timeout=self.server.lock_timeout):
                raise Failure(
                    "Neo.TransientError.Transaction.LockClientStopped",
                    f"Another transaction has written for more than "
                    f"{self.server.lock_timeout:g} s.",
                )
            self.writing = True
        try:
            self.conn.execute("BEGIN TRANSACTION READ ONLY" if read_only else "BEGIN TRANSACTION")
        except RuntimeError as exc:
            self._release_writer()
            raise classify(exc) from exc
        self.in_transaction = True
        self.state = TX_READY
        self.send(SUCCESS, {})

    def _on_run(self, query: str, parameters: dict, extra: dict) -> None:
        self._expect("RUN", READY, TX_READY, TX_STREAMING)
        if self.state == READY:  # an auto-commit transaction
            self._check_database(extra.get("db"))
            if extra.get("mode") == "r":
                result = self._execute(query, parameters)
            else:
                with self.server._writing():
                    result = self._execute(query, parameters)
            self.results = {0: result}
            self.last_qid = 0
            self.state = STREAMING
            self.send(SUCCESS, {"fields": result.fields, "t_first": 0})
            return
        qid = next(self.qids)
        self.results[qid] = self._execute(query, parameters)
        self.last_qid = qid
        self.state = TX_STREAMING
        self.send(SUCCESS, {"fields": self.results[qid].fields, "t_first": 0, "qid": qid})

    def _execute(self, query: str, parameters: dict) -> _Result:
        self.server.statements.append(query)
        fault = self.server._fault_for(query)
        if fault is not None:
            raise Failure(fault.code, fault.message)
        if self.server.schema_statement(self.conn, query):
            return _Result([], [], "s")
        try:
            result = self.conn.execute(query, from_bolt(parameters or {}))
        except (RuntimeError, ValueError, PackStreamError) as exc:
            raise classify(exc) from exc
        if isinstance(result, list):
            raise Failure("Neo.ClientError.Statement.SyntaxError", "One statement per query.")
        fields = result.get_column_names()
        rows = []
        while result.has_next():
            rows.append([to_bolt(v) for v in result.get_next()])
        writes = re.search(r"\b(CREATE|MERGE|SET|DELETE|REMOVE)\b", query, re.IGNORECASE)
        return _Result(fields, rows, ("rw" if fields else "w") if writes else "r")

    def _on_pull(self, extra: dict) -> None:
        self._stream("PULL", extra, send=True)

    def _on_discard(self, extra: dict) -> None:
        self._stream("DISCARD", extra, send=False)

    def _stream(self, name: str, extra: dict, *, send: bool) -> None:
        self._expect(name, STREAMING, TX_STREAMING)
        qid = extra.get("qid", -1)
        qid = self.last_qid if qid == -1 else qid
        result = self.results.get(qid)
        if result is None:
            raise Failure("Neo.ClientError.Request.Invalid", f"No open result with qid {qid}.")
        n = extra.get("n", -1)
        taken = result.rows if n == -1 else result.rows[:n]
        del result.rows[: len(taken)]
        if send:
            for row in taken:
                self.send(RECORD, row)
        if result.rows:
            self.send(SUCCESS, {"has_more": True})
            return
        del self.results[qid]
        summary = {"type": result.kind, "t_last": 0, "db": self.server.database}
        if self.state == STREAMING:
            summary["bookmark"] = self.server.next_bookmark()
            self.state = READY
        elif not self.results:
            self.state = TX_READY
        self.send(SUCCESS, summary)

    def _on_commit(self) -> None:
        self._expect("COMMIT", TX_READY, TX_STREAMING)
        self.results.clear()
        try:
            self.conn.execute("COMMIT")
        except RuntimeError as exc:
            self._finish_transaction("ROLLBACK")
            raise classify(exc) from exc
        finally:
            self.in_transaction = False
            self._release_writer()
        self.state = READY
        self.send(SUCCESS, {"bookmark": self.server.next_bookmark()})

    def _on_rollback(self) -> None:
        self._expect("ROLLBACK", TX_READY, TX_STREAMING)
        self._finish_transaction("ROLLBACK")
        self.state = READY
        self.send(SUCCESS, {})

    def _reset(self) -> None:
        self._finish_transaction("ROLLBACK")
        if self.state in (STREAMING, TX_READY, TX_STREAMING, FAILED):
            self.state = READY if self.conn is not None else AUTHENTICATION
        self.results.clear()

    def _finish_transaction(self, statement: str) -> None:
        if self.in_transaction and self.conn is not None:
            # A failed statement may have ended LadybugDB's transaction already.
            with contextlib.suppress(RuntimeError):
                self.conn.execute(statement)
        self.in_transaction = False
        self.results.clear()
        self._release_writer()

    def _release_writer(self) -> None:
        if self.writing:
            self.writing = False
            self.server.writer.release()
