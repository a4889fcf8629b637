"""The REST side: a small HTTP/1.1 server and the ``/v1`` routes the client uses.

Why not ``http.server``: its handler writes the status line and headers, then the body,
in separate ``send`` calls. With Nagle's algorithm on the server and delayed ACKs on the
client, the second segment waits for an ACK that is held back for ~40 ms, on every
keep-alive request. Here every response is built in memory and sent with one
``sendall``, and accepted sockets get ``TCP_NODELAY``: a request is answered in well
under a millisecond on loopback.

The listener can be closed and reopened on the same port (the "down" fault): closing it
and shutting every open connection makes the client see a refused connection, which is
what a crashed or restarting Weaviate looks like.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import struct
import threading
import uuid as uuid_lib
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from core.testing.weaviate_server import schema as sch
from core.testing.weaviate_server.faults import HTTP_CONNECTIONS, Counters, Faults
from core.testing.weaviate_server.store import (
    AlreadyExistsError,
    ClassNotFoundError,
    NotFoundError,
    Store,
    StoredObject,
    VectorValidationError,
    VectorWriteError,
    pack_vector,
)

if TYPE_CHECKING:
    from core.testing.weaviate_server.server import Auth

GRPC_MAX_MESSAGE_SIZE = 104858000  # what the client assumes too (connect/base.py)
_MAX_LINE = 65536
_MAX_HEADERS = 100

Response = tuple[int, bytes | None]
"""(status, JSON body or None for an empty body)."""


def _json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _error(message: str) -> bytes:
    """Weaviate's error body: ``{"error": [{"message": ...}]}``."""
    return _json({"error": [{"message": message}]})


def _swagger_error(code: int, message: str) -> bytes:
    """The go-swagger shape used for routing and auth errors: ``{"code", "message"}``."""
    return _json({"code": code, "message": message})


class DroppedRequestError(Exception):
    """A request whose injected delay was cut short by a reset or shutdown: the
    connection is closed without an answer."""


class RestApp:
    """Maps one parsed request to a response. No sockets here: easy to call directly."""

    def __init__(
        self,
        store: Store,
        faults: Faults,
        counters: Counters,
        auth: Auth,
        *,
        version: str,
        hostname: Callable[[], str],
        query_defaults_limit: int,
    ) -> None:
        self._store = store
        self._faults = faults
        self._counters = counters
        self._auth = auth
        self._version = version
        self._hostname = hostname
        self._default_limit = query_defaults_limit

    # -- dispatch --------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        path, _, query_string = target.partition("?")
        query = parse_qs(query_string) if query_string else {}
        parts = [unquote(p) for p in path.split("/") if p]
        route, args, allowed = _route(parts)
        key = f"{method} {route or path}"
        self._counters.incr(key)

        if not self._faults.delay("rest"):
            raise DroppedRequestError(key)
        failure = self._faults.take_failure("rest", key)
        if failure is not None:
            return failure.http_status, _error(failure.message)
        if route is None:
            return 404, _swagger_error(404, f"path {path} was not found")
        if method == "HEAD" and "HEAD" not in allowed and "GET" in allowed:
            method = "GET"  # answered like GET; the body is left out when it is sent
        if method not in allowed:
            return 405, _swagger_error(
                405, f"method {method} is not allowed, but [{','.join(sorted(allowed))}] are"
            )
        if route not in _PUBLIC_ROUTES:
            problem = self._auth.check(headers.get("authorization"))
            if problem is not None:
                return 401, _swagger_error(401, problem)

        payload: Any = None
        if body and method in ("POST", "PUT", "PATCH"):
            try:
                payload = json.loads(body)
            except ValueError as exc:
                return 400, _swagger_error(602, f'parsing body body from "" failed, because {exc}')
        handler = getattr(self, _HANDLERS[route])
        try:
            return handler(method, args, query, payload)
        except ClassNotFoundError as exc:
            return 422, _error(str(exc))
        except sch.SchemaError as exc:
            return 422, _error(str(exc))
        except sch.ValidationError as exc:
            return 422, _error(str(exc))

    # -- meta and probes ---------------------------------------------------------------------
    def meta(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        # A server lists the modules it runs; here text2vec-transformers is there when a
        # vectoriser is plugged in (WeaviateTestServer.set_vectorizer).
        modules = {sch.TEXT2VEC_TRANSFORMERS: {}} if self._store.vectorizer is not None else {}
        return 200, _json(
            {
                "hostname": self._hostname(),
                "modules": modules,
                "version": self._version,
                "grpcMaxMessageSize": GRPC_MAX_MESSAGE_SIZE,
            }
        )

    def ready(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        return (503 if self._faults.not_ready else 200), None

    def live(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        return 200, None

    def openid(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        # No OIDC here (API keys only), and a real server without OIDC answers 404.
        return 404, None

    def pypi(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        """Stand-in for PyPI's JSON API, which the client asks for its latest version
        during ``connect()`` unless ``skip_init_checks`` (point PYPI_PACKAGE_URL here)."""
        from weaviate import __version__ as client_version

        return 200, _json({"info": {"name": "weaviate-client", "version": client_version}})

    def nodes(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        classes = self._store.all_classes()
        if args:
            classes = [c for c in classes if c.name == sch.capitalize_class_name(args[0])]
        verbose = query.get("output", ["minimal"])[0] == "verbose"
        shards = [
            {
                "class": c.name,
                "name": _shard_name(c.name),
                "objectCount": self._store.count(c.name),
                "vectorIndexingStatus": "READY",
                "vectorQueueLength": 0,
                "compressed": False,
                "loaded": True,
            }
            for c in classes
        ]
        node = {
            "batchStats": {"queueLength": 0, "ratePerSecond": self._store.batch_rate()},
            "gitHash": "testserver",
            "name": "weaviate-test-0",
            "shards": shards if verbose else None,
            "stats": {
                "objectCount": sum(s["objectCount"] for s in shards),
                "shardCount": len(shards),
            },
            "status": "HEALTHY",
            "version": self._version,
        }
        return 200, _json({"nodes": [node]})

    # -- schema ------------------------------------------------------------------------------
    def schema_root(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        if method == "GET":
            return 200, _json({"classes": [c.json for c in self._store.all_classes()]})
        cls = self._store.create_class(payload)
        return 200, _json(cls.json)

    def schema_class(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        name = args[0]
        if method == "GET":
            cls = self._store.get_class(name)
            return (200, _json(cls.json)) if cls is not None else (404, None)
        if method == "DELETE":
            self._store.delete_class(name)  # deleting a missing class is a no-op: 200
            return 200, None
        return 422, _error(
            "updating a collection's configuration is not supported by the Weaviate test server"
        )

    def schema_properties(
        self, method: str, args: list[str], query: dict, payload: Any
    ) -> Response:
        prop = self._store.add_property(args[0], payload or {})
        return 200, _json(prop)

    def schema_shards(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        cls = self._store.get_class(args[0])
        if cls is None:
            return 404, None
        return 200, _json(
            [{"name": _shard_name(cls.name), "status": "READY", "vectorQueueSize": 0}]
        )

    # -- objects -----------------------------------------------------------------------------
    def objects_root(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        if method == "GET":
            return self._list_objects(query)
        if not isinstance(payload, dict):
            return 422, _error("invalid object: the given object is empty")
        name = payload.get("class")
        if not name:
            return 422, _error("invalid object: the given class is empty")
        problem = _tenant_problem(payload)
        if problem:
            return 422, _error(problem)
        raw_id = payload.get("id")
        uid = sch.canonical_uuid(raw_id) if raw_id else str(uuid_lib.uuid4())
        if uid is None:
            return 422, _swagger_error(606, f'id in body must be of type uuid: "{raw_id}"')
        vector, vectors = _vectors(payload)
        try:
            obj = self._store.insert(name, uid, payload.get("properties"), vector, vectors)
        except AlreadyExistsError as exc:
            return 422, _error(str(exc))
        except (ClassNotFoundError, VectorValidationError) as exc:
            return 422, _error(f"invalid object: {exc}")
        except VectorWriteError as exc:
            # A wrong dimension or a failing vectoriser: the server answers 500.
            return 500, _error(str(exc))
        return 200, _json(_object_json(sch.capitalize_class_name(name), obj, False))

    def object_by_id(self, method: str, args: list[str], query: dict, payload: Any) -> Response:
        name, raw_id = args
        uid = sch.canonical_uuid(raw_id)
        if uid is None:
            return 422, _swagger_error(606, f'id in path must be of type uuid: "{raw_id}"')
        cls_name = sch.capitalize_class_name(name)
        if method in ("GET", "HEAD"):
            obj = self._store.record(name, uid)
            if obj is None:
                return 404, None
            if method == "HEAD":
                return 204, None
            include = ",".join(query.get("include", []))
            return 200, _json(_object_json(cls_name, obj, "vector" in include))
        if method == "DELETE":
            return (204, None) if self._store.delete(name, uid) else (404, None)
        if not isinstance(payload, dict):
            return 422, _error("invalid object: the given object is empty")
        problem = _tenant_problem(payload)
        if problem:
            return 422, _error(problem)
        vector, vectors = _vectors(payload)
        write = self._store.replace if method == "PUT" else self._store.merge
        try:
            obj = write(name, uid, payload.get("properties"), vector, vectors)
        except (NotFoundError, ClassNotFoundError):
            # The very answer a real server gives for PUT/PATCH of a missing object:
            # 404 and an empty body.
            return 404, None
        except VectorValidationError as exc:
            return 422, _error(f"invalid object: {exc}")
        except VectorWriteError as exc:
            return 500, _error(str(exc))
        if method == "PATCH":
            return 204, None
        return 200, _json(_object_json(cls_name, obj, False))

    def _list_objects(self, query: dict) -> Response:
        limit = int(query.get("limit", [self._default_limit])[0])
        after = query.get("after", [""])[0]
        include = ",".join(query.get("include", []))
        names = query.get("class")
        if after and not names:
            return 422, _error("cursor api: 'class' is required when 'after' is given")
        out = []
        for name in names or self._store.collections():
            cls, objects = self._store.cursor_page(name, sch.canonical_uuid(after) or after, 0)
            out.extend(_object_json(cls.name, o, "vector" in include) for o in objects)
        out = out[:limit]
        return 200, _json({"objects": out, "totalResults": len(out), "deprecations": None})


# -- routing -------------------------------------------------------------------------------

_HANDLERS = {
    "/v1/meta": "meta",
    "/v1/.well-known/ready": "ready",
    "/v1/.well-known/live": "live",
    "/v1/.well-known/openid-configuration": "openid",
    "/v1/nodes": "nodes",
    "/v1/nodes/{class}": "nodes",
    "/v1/schema": "schema_root",
    "/v1/schema/{class}": "schema_class",
    "/v1/schema/{class}/properties": "schema_properties",
    "/v1/schema/{class}/shards": "schema_shards",
    "/v1/objects": "objects_root",
    "/v1/objects/{class}/{id}": "object_by_id",
    "/pypi/weaviate-client/json": "pypi",
}
_PUBLIC_ROUTES = frozenset(
    {
        "/v1/.well-known/ready",
        "/v1/.well-known/live",
        "/v1/.well-known/openid-configuration",
        "/pypi/weaviate-client/json",
    }
)


def _route(parts: list[str]) -> tuple[str | None, list[str], frozenset[str]]:
    """(route template, path arguments, allowed methods) for a split path."""
    n = len(parts)
    if n >= 1 and parts[0] == "pypi":
        if parts == ["pypi", "weaviate-client", "json"]:
            return "/pypi/weaviate-client/json", [], frozenset({"GET"})
        return None, [], frozenset()
    if n < 2 or parts[0] != "v1":
        return None, [], frozenset()
    head = parts[1]
    if head == "meta" and n == 2:
        return "/v1/meta", [], frozenset({"GET"})
    if head == ".well-known" and n == 3 and parts[2] in ("ready", "live", "openid-configuration"):
        return f"/v1/.well-known/{parts[2]}", [], frozenset({"GET"})
    if head == "nodes" and n in (2, 3):
        return (
            ("/v1/nodes", [], frozenset({"GET"}))
            if n == 2
            else (
                "/v1/nodes/{class}",
                [parts[2]],
                frozenset({"GET"}),
            )
        )
    if head == "schema":
        if n == 2:
            return "/v1/schema", [], frozenset({"GET", "POST"})
        if n == 3:
            return "/v1/schema/{class}", [parts[2]], frozenset({"GET", "PUT", "DELETE"})
        if n == 4 and parts[3] == "properties":
            return "/v1/schema/{class}/properties", [parts[2]], frozenset({"POST"})
        if n == 4 and parts[3] == "shards":
            return "/v1/schema/{class}/shards", [parts[2]], frozenset({"GET"})
    if head == "objects":
        if n == 2:
            return "/v1/objects", [], frozenset({"GET", "POST"})
        if n == 4:
            return (
                "/v1/objects/{class}/{id}",
                [parts[2], parts[3]],
                frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
            )
    return None, [], frozenset()


def _shard_name(class_name: str) -> str:
    # Real shard names are random 12-character ids; a stable one per class is enough.
    return uuid_lib.uuid5(uuid_lib.NAMESPACE_URL, class_name).hex[:12]


def _tenant_problem(payload: dict[str, Any]) -> str | None:
    tenant = payload.get("tenant")
    if tenant:
        return (
            f"has multi-tenancy disabled, but request was with tenant {tenant!r} "
            "(the Weaviate test server has no multi-tenancy)"
        )
    return None


def _vectors(payload: dict[str, Any]) -> tuple[bytes | None, dict[str, tuple[bytes, int]] | None]:
    """``vector`` (a list) and ``vectors`` (name -> list) of a REST object, packed as
    float32 bytes; where they go is the store's business (``store._normalize_vectors``)."""
    vector = payload.get("vector")
    packed = _packed(vector, "vector") if vector else None
    named = payload.get("vectors")
    if not named:
        return packed, None
    if not isinstance(named, dict):
        raise sch.ValidationError("invalid object: vectors must be an object")
    out: dict[str, tuple[bytes, int]] = {}
    for name, values in named.items():
        if values and isinstance(values[0], list):
            raise sch.ValidationError(
                "invalid object: multi-vectors are not supported by the Weaviate test server"
            )
        out[name] = (_packed(values or [], f"vector {name}"), 1)  # 1 = VECTOR_TYPE_SINGLE_FP32
    return packed, out


def _packed(values: Any, what: str) -> bytes:
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise sch.ValidationError(f"invalid object: {what} must be an array of numbers")
    return pack_vector(values)


def _object_json(class_name: str, obj: StoredObject, include_vector: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "class": class_name,
        "creationTimeUnix": obj.created,
        "id": obj.uuid,
        "lastUpdateTimeUnix": obj.updated,
        "properties": obj.properties,
        "vectorWeights": None,
    }
    if include_vector:
        if obj.vector is not None:
            out["vector"] = obj.vector_list()
        if obj.vectors:
            out["vectors"] = {
                name: list(struct.unpack(f"<{len(b) // 4}f", b))
                for name, (b, _) in obj.vectors.items()
            }
    return out


# -- the HTTP/1.1 server -----------------------------------------------------------------------

_REASONS = {s.value: s.phrase for s in HTTPStatus}


def _response_bytes(status: int, body: bytes | None, keep_alive: bool, head: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    if status not in (204, 304):
        lines.append(f"Content-Length: {len(body or b'')}")
        if body:
            lines.append("Content-Type: application/json")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    lines.append("Server: weaviate-test-server")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head or not body or status in (204, 304):
        return head_bytes
    return head_bytes + body


class _BadRequest(Exception):
    pass


class HttpServer:
    """Accept loop plus one thread per connection; all threads are joined on stop.

    Open sockets and connection threads are tracked apart. A connection thread removes
    its socket when it closes it, but never its own thread: a thread that has
    unregistered itself is still running until it returns (and Python has cleaned up after
    it), so :meth:`stop` could miss it and return with it alive. Threads are only
    dropped by :meth:`stop` after joining them, or by the accept loop once they are dead.
    """

    def __init__(
        self, app: RestApp, host: str, port: int, counters: Counters, thread_prefix: str
    ) -> None:
        self._app = app
        self._thread_prefix = thread_prefix
        self._counters = counters
        self._host = host
        self._requested_port = port
        self.port = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._connections: set[socket.socket] = set()  # open sockets, to shut on stop
        self._threads: set[threading.Thread] = set()  # every connection thread not joined

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            port = self.port or self._requested_port
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((self._host, port))
                listener.listen(128)
            except OSError:
                listener.close()
                raise
            self.port = listener.getsockname()[1]
            self._listener = listener
            self._wake_r, self._wake_w = socket.socketpair()
            self._accept_thread = threading.Thread(
                target=self._accept_loop,
                args=(listener, self._wake_r),
                name=f"{self._thread_prefix}http-accept",
                daemon=True,
            )
            self._accept_thread.start()

    def stop(self) -> None:
        """Close the listener and every open connection, and join all threads.

        Requests sleeping on injected latency must have been woken (and later delays cut
        short) before this, see ``Faults._halt_delays``: the joins here wait without a
        time limit, so that no thread of the server is left running when this returns.
        """
        with self._lock:
            listener, thread = self._listener, self._accept_thread
            wake_r, wake_w = self._wake_r, self._wake_w
            self._listener = self._accept_thread = self._wake_r = self._wake_w = None
        if listener is None or wake_r is None or wake_w is None or thread is None:
            return
        with contextlib.suppress(OSError):
            wake_w.send(b"x")
        thread.join()
        listener.close()
        wake_r.close()
        wake_w.close()
        # The accept loop has ended: no connection or connection thread is added now.
        with self._lock:
            connections = list(self._connections)
            threads = list(self._threads)
        for sock in connections:
            # shutdown() wakes the thread blocked in recv() or send(); it then closes the
            # socket. A socket its thread already closed raises OSError (fd is -1).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for conn_thread in threads:
            conn_thread.join()
        with self._lock:
            self._threads.difference_update(threads)

    def _accept_loop(self, listener: socket.socket, wake: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while True:
                events = sel.select()
                if any(key.fileobj is wake for key, _ in events):
                    return
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._counters.incr(HTTP_CONNECTIONS)
                thread = threading.Thread(
                    target=self._serve_connection,
                    args=(conn,),
                    name=f"{self._thread_prefix}http-conn",
                    daemon=True,
                )
                with self._lock:
                    # Forget the threads that are over (is_alive() is false only once the
                    # thread has fully exited), so a long session does not pile them up.
                    self._threads = {t for t in self._threads if t.is_alive()}
                    self._connections.add(conn)
                    self._threads.add(thread)
                try:
                    thread.start()
                except RuntimeError:  # cannot start a new thread
                    with self._lock:
                        self._connections.discard(conn)
                        self._threads.discard(thread)
                    conn.close()

    def _serve_connection(self, conn: socket.socket) -> None:
        rfile = conn.makefile("rb", buffering=65536)
        try:
            while True:
                try:
                    request = self._read_request(rfile)
                except _BadRequest as exc:
                    conn.sendall(_response_bytes(400, _swagger_error(400, str(exc)), False, False))
                    return
                if request is None:
                    return
                method, target, headers, body, keep_alive = request
                try:
                    status, payload = self._app.handle(method, target, headers, body)
                except DroppedRequestError:
                    return
                except Exception as exc:  # a bug here must not kill the connection silently
                    status, payload = 500, _error(f"test server error: {exc!r}")
                conn.sendall(_response_bytes(status, payload, keep_alive, method == "HEAD"))
                if not keep_alive:
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._connections.discard(conn)  # the thread stays in _threads: see class
            rfile.close()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    @staticmethod
    def _read_request(
        rfile: Any,
    ) -> tuple[str, str, dict[str, str], bytes, bool] | None:
        line = rfile.readline(_MAX_LINE + 1)
        while line in (b"\r\n", b"\n"):
            line = rfile.readline(_MAX_LINE + 1)
        if not line:
            return None
        if len(line) > _MAX_LINE:
            raise _BadRequest("request line too long")
        try:
            method, target, version = line.decode("latin-1").split()
        except ValueError:
            raise _BadRequest(f"malformed request line {line!r}") from None
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            raw = rfile.readline(_MAX_LINE + 1)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest(f"malformed header {raw!r}")
            headers[name.strip().lower()] = value.strip()
        else:
            raise _BadRequest("too many headers")
        body = b""
        if "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise _BadRequest("bad Content-Length") from None
            body = rfile.read(length) if length > 0 else b""
            if len(body) != length:
                return None  # the peer went away mid-body
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = rfile.readline(_MAX_LINE + 1)
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BadRequest("bad chunk size") from None
                if size == 0:
                    while rfile.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(rfile.read(size))
                rfile.readline(_MAX_LINE + 1)
            body = b"".join(chunks)
        connection = headers.get("connection", "").lower()
        # HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 only when asked.
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        return method, target, headers, body, keep_alive
