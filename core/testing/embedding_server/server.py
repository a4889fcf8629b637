"""``EmbeddingTestServer``: a local OpenAI-compatible embeddings endpoint.

It answers ``POST /v1/embeddings`` (and ``GET /v1/models``) the way OpenAI, Ollama, vLLM
and Hugging Face TEI do, so the real ``HttpEmbedder`` talks HTTP to it::

    server = EmbeddingTestServer(dimension=8).start()
    embedder = HttpEmbedder(url=server.url, model="test", dimension=8)
    embedder.embed(["Crash on save"])  # one row of 8 floats
    server.requests[-1].inputs  # 1
    server.stop()

Vectors are deterministic and need no model: every word (lower-cased ``\\w+`` run) has a
fixed pseudo-random direction (SHAKE-256 of the word, one byte per dimension, scaled to
[-1, 1]) and a text's vector is the sum over its words (a text without words uses the whole
text as its one word). Identical texts give identical vectors, texts that share words are
closer, and word order does not matter. The vectors are not normalised, on purpose: the
client must do it (TEI with ``normalize=false`` answers the same way).

Faults, switched while the server runs: :meth:`~EmbeddingTestServer.fail_next`,
:meth:`~EmbeddingTestServer.delay`, :meth:`~EmbeddingTestServer.set_dimension`,
:meth:`~EmbeddingTestServer.set_api_keys`, :meth:`~EmbeddingTestServer.echo_key_in_errors`,
:meth:`~EmbeddingTestServer.corrupt_next`, :meth:`~EmbeddingTestServer.reverse_order`.
:meth:`~EmbeddingTestServer.reset` turns them all off and empties the request log.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import ipaddress
import itertools
import json
import re
import socket
import socketserver
import struct
import sys
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from core.testing.serving import serve_until_stopped

DEFAULT_MODEL = "agira-test-embedder"
EMBEDDINGS_PATHS = ("/v1/embeddings", "/embeddings")
CORRUPTIONS = ("invalid-json", "missing-row")
WORD = re.compile(r"\w+")

_instances = itertools.count(1)


def embed_text(text: str, dimension: int) -> list[float]:
    """The server's vector for ``text`` (see the module docstring)."""
    vector = [0.0] * dimension
    for word in WORD.findall(text.lower()) or [text]:
        digest = hashlib.shake_256(word.encode()).digest(dimension)
        for i, byte in enumerate(digest):
            vector[i] += (byte - 127.5) / 127.5
    return vector


@dataclass
class EmbeddingRequest:
    """One request the server received, logged before any delay or fault.

    ``has_auth``: an ``Authorization`` header was sent (right or wrong); ``inputs``: the
    number of texts in the body (0 when it had none or was not JSON); ``status``: what the
    server answered (None while it is still delaying, or when the client left first).
    """

    method: str
    path: str
    has_auth: bool
    inputs: int
    model: str | None
    status: int | None = None


Answer = tuple[int, list[tuple[str, str]], bytes]


def json_answer(status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Answer:
    return status, [("Content-Type", "application/json"), *headers], json.dumps(payload).encode()


def error_answer(status: int, message: str, kind: str, code: str | None = None) -> Answer:
    """The error body OpenAI (and vLLM, Ollama's /v1) send."""
    extra = [("Retry-After", "0")] if status == 429 else []
    error = {"message": message, "type": kind, "param": None, "code": code}
    return json_answer(status, {"error": error}, extra)


# -- HTTP plumbing -----------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection is dropped after this
    server: _HTTPServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.app.answer(
            self.command, self.path, self.headers, body
        )
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def version_string(self) -> str:
        return "agira-embedding-test-server"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection (keep-alive), every one of them joined by
    :meth:`close_connections`."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: EmbeddingTestServer) -> None:
        self.app = app
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host name up (getfqdn): not needed here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{self.app.thread_prefix}http-conn",
            daemon=True,
        )
        with self._conn_lock:
            self._conn_threads = {t for t in self._conn_threads if t.is_alive()}
            self._conn_threads.add(thread)
            self._connections.add(request)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # the client went away (a timeout), or stop() shut the socket
        finally:
            with self._conn_lock:
                self._connections.discard(request)
            self.shutdown_request(request)

    def close_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
            threads = list(self._conn_threads)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join()
        with self._conn_lock:
            self._conn_threads.difference_update(threads)


def _check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"the embedding test server only listens on loopback addresses, not {host!r}"
        )


# -- the server --------------------------------------------------------------------------------
class EmbeddingTestServer:
    """An OpenAI-compatible embeddings endpoint on a loopback port (0: any free one).

    ``api_keys``: the bearer tokens accepted (none: no authentication). ``reset()`` goes
    back to the dimension and keys given here.
    """

    def __init__(
        self,
        dimension: int = 8,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Iterable[str] = (),
        model: str = DEFAULT_MODEL,
    ) -> None:
        _check_loopback(host)
        _check_dimension(dimension)
        self.host = host
        self.model = model
        self.thread_prefix = f"embedding-test-{next(_instances)}-"
        self._requested_port = port
        self._port = 0
        self._initial = (dimension, frozenset(api_keys))
        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        # Set (and replaced) to end every delayed request at once. While the server is
        # stopped it stays set, so a request that only reaches the delay then does not
        # start a sleep that nothing would end any more.
        self._wake = threading.Event()
        self._wake.set()
        self._generation = 0
        self._clear()

    def _clear(self) -> None:
        """Faults off, log empty, initial dimension and keys (caller holds the lock or
        nothing runs yet)."""
        self._dimension, self._api_keys = self._initial
        self._requests: list[EmbeddingRequest] = []
        self._failures: deque[int] = deque()
        self._corruptions: deque[str] = deque()
        self._delay = 0.0
        self._echo_key = False
        self._reverse = False

    # -- addresses -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The base URL (without ``/v1``), as a user would type it."""
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> EmbeddingTestServer:
        with self._lifecycle:
            if self._httpd is not None:
                return self
            httpd = _HTTPServer((self.host, self._port or self._requested_port), self)
            self._port = httpd.server_address[1]
            with self._lock:
                self._wake = threading.Event()
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{self.thread_prefix}http-serve",
                daemon=True,
            )
            thread.start()
            self._httpd, self._serve_thread = httpd, thread
        return self

    def stop(self) -> None:
        """Close the listener, end every delay, close every connection and join all
        threads."""
        with self._lifecycle:
            httpd, thread = self._httpd, self._serve_thread
            self._httpd = self._serve_thread = None
            if httpd is None or thread is None:
                return
            httpd.shutdown()
            thread.join()
            httpd.server_close()
            with self._lock:
                self._wake.set()
            httpd.close_connections()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> EmbeddingTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- log and faults --------------------------------------------------------------------------
    @property
    def requests(self) -> list[EmbeddingRequest]:
        """Every request received since the start or the last reset, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def dimension(self) -> int:
        with self._lock:
            return self._dimension

    def reset(self) -> None:
        """Faults off, delays ended, request log emptied, the initial dimension and keys."""
        with self._lock:
            self._clear()
            # A request still waiting belongs to the test before: it must not take
            # the next test's faults or land in its log.
            self._generation += 1
            self._end_delays()

    def set_api_keys(self, keys: Iterable[str]) -> None:
        """Accept only these bearer tokens (401 otherwise); an empty list: no auth."""
        with self._lock:
            self._api_keys = frozenset(keys)

    def echo_key_in_errors(self, enabled: bool = True) -> None:
        """Quote the presented key in the 401 message, as a careless server might."""
        with self._lock:
            self._echo_key = enabled

    def set_dimension(self, dimension: int) -> None:
        """Answer with vectors of this dimension from now on."""
        _check_dimension(dimension)
        with self._lock:
            self._dimension = dimension

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` requests with ``status`` and an OpenAI-style error body
        (429 also sends ``Retry-After: 0``)."""
        with self._lock:
            self._failures.extend([status] * n)

    def corrupt_next(self, n: int = 1, how: str = "invalid-json") -> None:
        """Answer the next ``n`` embedding requests with 200 and a broken body:
        ``"invalid-json"`` or ``"missing-row"`` (one embedding fewer than texts)."""
        if how not in CORRUPTIONS:
            raise ValueError(f"how must be one of {CORRUPTIONS}, not {how!r}")
        with self._lock:
            self._corruptions.extend([how] * n)

    def reverse_order(self, enabled: bool = True) -> None:
        """List the embeddings last index first (each still carries its ``index``)."""
        with self._lock:
            self._reverse = enabled

    def delay(self, seconds: float) -> None:
        """Wait this long before answering each request (0: no delay). Requests already
        waiting are ended, as they are by ``reset()`` and ``stop()``."""
        with self._lock:
            self._delay = max(0.0, seconds)
            self._end_delays()

    def _end_delays(self) -> None:
        if self.running:
            self._wake.set()
            self._wake = threading.Event()

    # -- answers ---------------------------------------------------------------------------------
    def answer(self, method: str, target: str, headers: Any, body: bytes) -> Answer:
        path = urlsplit(target).path.rstrip("/") or "/"
        authorization = headers.get("Authorization")
        try:
            request = json.loads(body) if body else {}
        except ValueError:
            request = None
        texts = _texts(request)
        model = request.get("model") if isinstance(request, dict) else None
        record = EmbeddingRequest(
            method=method,
            path=path,
            has_auth=authorization is not None,
            inputs=len(texts) if texts else 0,
            model=model if isinstance(model, str) else None,
        )
        with self._lock:
            self._requests.append(record)
            delay, wake, generation = self._delay, self._wake, self._generation
        if delay:
            wake.wait(delay)
            with self._lock:
                cut_short = generation != self._generation or not self.running
            if cut_short:
                return error_answer(503, "Cut short by a reset or a stop.", "server_error")
        answer = self._answer(method, path, authorization, request, texts)
        with self._lock:
            record.status = answer[0]
        return answer

    def _answer(
        self,
        method: str,
        path: str,
        authorization: str | None,
        request: Any,
        texts: list[str] | None,
    ) -> Answer:
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            keys, echo = self._api_keys, self._echo_key
        if failure is not None:
            return error_answer(failure, "Injected failure.", "server_error")
        if keys:
            presented = (authorization or "").removeprefix("Bearer ").strip()
            if presented not in keys:
                shown = f": {presented}" if echo and presented else ""
                message = (
                    f"Incorrect API key provided{shown}."
                    if presented
                    else "You didn't provide an API key."
                )
                return error_answer(401, message, "invalid_request_error", "invalid_api_key")
        if path == "/v1/models":
            if method != "GET":
                return error_answer(405, "Use GET.", "invalid_request_error")
            data = [{"id": self.model, "object": "model", "created": 0, "owned_by": "agira"}]
            return json_answer(200, {"object": "list", "data": data})
        if path not in EMBEDDINGS_PATHS:
            return error_answer(404, f"No route for {path}.", "invalid_request_error")
        if method != "POST":
            return error_answer(405, "Use POST.", "invalid_request_error")
        if not isinstance(request, dict):
            return error_answer(400, "The body is not a JSON object.", "invalid_request_error")
        if not texts:
            message = "'input' must be a string or a non-empty list of strings."
            return error_answer(400, message, "invalid_request_error")
        return self._embeddings(request, texts)

    def _embeddings(self, request: dict[str, Any], texts: list[str]) -> Answer:
        with self._lock:
            dimension, reverse = self._dimension, self._reverse
            corruption = self._corruptions.popleft() if self._corruptions else None
        if corruption == "invalid-json":
            return 200, [("Content-Type", "application/json")], b'{"data": [ oops'
        as_base64 = request.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector: Any = embed_text(text, dimension)
            if as_base64:
                vector = base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        if corruption == "missing-row":
            data.pop()
        if reverse:
            data.reverse()
        tokens = sum(len(WORD.findall(text)) or 1 for text in texts)
        return json_answer(
            200,
            {
                "object": "list",
                "data": data,
                "model": request.get("model") or self.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


def _texts(request: Any) -> list[str] | None:
    """The body's ``input`` as a list of texts (None when absent or not text)."""
    value = request.get("input") if isinstance(request, dict) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(text, str) for text in value):
        return value
    return None


def _check_dimension(dimension: int) -> None:
    if not isinstance(dimension, int) or dimension < 1:
        raise ValueError(f"the dimension must be a positive integer, not {dimension!r}")


# -- by hand -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; prints one line with the URL once it listens."""
    parser = argparse.ArgumentParser(
        prog="python -m core.testing.embedding_server",
        description="A local OpenAI-compatible embeddings endpoint with deterministic vectors.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free)")
    parser.add_argument("--dimension", type=int, default=8, help="vector dimension")
    parser.add_argument(
        "--api-key", action="append", default=[], help="require this bearer token (repeatable)"
    )
    args = parser.parse_args(argv)

    server = EmbeddingTestServer(
        dimension=args.dimension, host=args.host, port=args.port, api_keys=args.api_key
    )
    return serve_until_stopped(
        server,
        lambda: (
            f"Embedding test server on {server.url} (POST /v1/embeddings) "
            f"port={server.port} dimension={args.dimension}"
            + (" (API key required)" if args.api_key else "")
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
