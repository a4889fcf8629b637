"""``WeaviateTestServer``: REST and gRPC front ends over one store, started in-process."""

from __future__ import annotations

import ipaddress
import itertools
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from weaviate.proto.v1 import weaviate_pb2_grpc

from core.testing.weaviate_server.faults import Counters, Faults
from core.testing.weaviate_server.grpc_service import WeaviateService, add_health_service
from core.testing.weaviate_server.rest import GRPC_MAX_MESSAGE_SIZE, HttpServer, RestApp
from core.testing.weaviate_server.store import Store, Vectorizer

DEFAULT_VERSION = "1.36.2"

_instances = itertools.count(1)

_NO_AUTH_MESSAGE = "anonymous access not enabled, please provide an auth scheme such as OIDC"


class Auth:
    """API-key authentication, the way Weaviate's ``AUTHENTICATION_APIKEY_*`` works.

    With no keys configured every request is anonymous and allowed. With keys, a request
    needs ``Authorization: Bearer <key>`` (REST header or gRPC metadata) with one of them.
    """

    def __init__(self, faults: Faults, api_keys: Iterable[str] = ()) -> None:
        self._faults = faults
        self._lock = threading.Lock()
        self._keys: frozenset[str] = frozenset(api_keys)

    @property
    def api_keys(self) -> frozenset[str]:
        with self._lock:
            return self._keys

    def set_api_keys(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._keys = frozenset(keys)

    def check(self, authorization: str | None) -> str | None:
        """None when allowed, else the 401 message."""
        keys = self.api_keys
        if not keys:
            return None
        if not authorization:
            return _NO_AUTH_MESSAGE
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _NO_AUTH_MESSAGE
        if token not in keys or self._faults.rejecting_api_key:
            return "invalid api key: key not found"
        return None


def _check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"the Weaviate test server only listens on loopback addresses, not {host!r}"
        )


class WeaviateTestServer:
    """A Weaviate the real ``weaviate-client`` cannot tell apart, for everything Agira uses.

    ::

        with WeaviateTestServer() as server:
            client = weaviate.connect_to_custom(**server.connect_kwargs())
            ...
            assert server.store.count("AgiraObject") == 3
            assert server.counters[BATCH_OBJECTS] == 1

    Both ports are random free ports unless given. ``faults`` switches failures on and
    off while it runs, ``counters`` counts calls per endpoint and RPC, ``store`` holds the
    data. :meth:`reset` brings all three back to a clean state.

    ``vectorizer`` (or :meth:`set_vectorizer`) is the model behind the
    ``text2vec-transformers`` module: a callable taking a list of texts and returning one
    list of floats per text. Without one the module counts as absent.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        http_port: int = 0,
        grpc_port: int = 0,
        api_keys: Iterable[str] = (),
        version: str = DEFAULT_VERSION,
        auto_schema: bool = True,
        query_defaults_limit: int = 10,
        query_maximum_results: int = 10000,
        grpc_workers: int = 16,
        vectorizer: Vectorizer | None = None,
    ) -> None:
        _check_loopback(host)
        self.host = host
        # Every thread this server starts has this prefix, so a test can check that
        # stop() left none behind.
        self.thread_prefix = f"weaviate-test-{next(_instances)}-"
        self.version = version
        self.counters = Counters()
        self.faults = Faults()
        self.store = Store(self.counters, auto_schema=auto_schema)
        self.auth = Auth(self.faults, api_keys)
        self._initial_api_keys = frozenset(api_keys)
        self._initial_auto_schema = auto_schema
        self._initial_vectorizer = vectorizer
        self.store.vectorizer = vectorizer
        self._requested_grpc_port = grpc_port
        self._grpc_workers = grpc_workers
        self._lock = threading.RLock()
        self._started = False
        self._down = False
        self.grpc_port = 0

        self._rest_app = RestApp(
            self.store,
            self.faults,
            self.counters,
            self.auth,
            version=version,
            hostname=lambda: f"http://{self.host}:{self.http_port}",
            query_defaults_limit=query_defaults_limit,
        )
        self._http = HttpServer(self._rest_app, host, http_port, self.counters, self.thread_prefix)
        self._service = WeaviateService(
            self.store,
            self.faults,
            self.counters,
            self.auth,
            query_defaults_limit=query_defaults_limit,
            query_maximum_results=query_maximum_results,
        )
        self._grpc_server: grpc.Server | None = None
        self._grpc_executor: ThreadPoolExecutor | None = None
        self._grpc_serve_thread: threading.Thread | None = None
        self.faults._bind(self.down, self.up, lambda: self._down)

    # -- addresses -------------------------------------------------------------------------
    @property
    def http_port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``weaviate.connect_to_custom`` pointing at this server."""
        kwargs: dict[str, Any] = {
            "http_host": self.host,
            "http_port": self.http_port,
            "http_secure": False,
            "grpc_host": self.host,
            "grpc_port": self.grpc_port,
            "grpc_secure": False,
        }
        kwargs.update(overrides)
        return kwargs

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> WeaviateTestServer:
        with self._lock:
            if self._started:
                return self
            self.faults._resume_delays()
            self._http.start()
            try:
                self._start_grpc(self._requested_grpc_port)
            except BaseException:
                self.faults._halt_delays()
                self._http.stop()
                raise
            self._started = True
            self._down = False
        return self

    def stop(self) -> None:
        """Stop both front ends and join every thread they started."""
        with self._lock:
            if not self._started:
                return
            # Wake handlers sleeping on injected latency, and keep any request still being
            # read from starting a new sleep, so the joins below end promptly.
            self.faults._halt_delays()
            self._http.stop()
            self._stop_grpc()
            self._started = False
            self._down = False

    def __enter__(self) -> WeaviateTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._started and not self._down

    # -- the "down" fault --------------------------------------------------------------------
    def down(self) -> None:
        """Close both listeners and open connections; clients get connection refused."""
        with self._lock:
            if not self._started or self._down:
                return
            self.faults._halt_delays()
            self._http.stop()
            self._stop_grpc()
            self._down = True

    def up(self) -> None:
        """Listen again on the same ports after :meth:`down`."""
        with self._lock:
            if not self._started or not self._down:
                return
            self.faults._resume_delays()
            self._http.start()
            self._start_grpc(self.grpc_port)
            self._down = False

    # -- the vectoriser module -----------------------------------------------------------------
    def set_vectorizer(self, vectorizer: Vectorizer | None) -> None:
        """Plug in the model behind the ``text2vec-transformers`` module.

        ``vectorizer(texts)`` gets a list of strings (the objects' texts, see
        ``vectors.object_text``, or the query of ``near_text`` / ``hybrid``) and returns
        one vector per text (a list of floats; None for "no vector"). Objects written
        without a vector to a collection whose named vector uses the module get theirs
        from it, one call per batch. ``None`` removes the module: writes to such
        collections then fail as on a server without it.
        """
        self.store.vectorizer = vectorizer

    @property
    def vectorizer(self) -> Vectorizer | None:
        return self.store.vectorizer

    # -- reset between tests -----------------------------------------------------------------
    def reset(self) -> None:
        """Empty the store, clear every fault (back up if down), zero the counters, and
        restore the API keys, auto-schema setting and vectoriser the server was created
        with.

        Requests still sleeping on injected latency are dropped, not served, so nothing
        from before the reset reaches the store after it."""
        self.faults.clear()
        self.store.reset()
        self.store.auto_schema = self._initial_auto_schema
        self.store.vectorizer = self._initial_vectorizer
        self.auth.set_api_keys(self._initial_api_keys)
        self.counters.reset()

    # -- gRPC plumbing -------------------------------------------------------------------------
    def _start_grpc(self, port: int) -> None:
        executor = ThreadPoolExecutor(
            max_workers=self._grpc_workers, thread_name_prefix=f"{self.thread_prefix}grpc"
        )
        server = grpc.server(
            executor,
            options=[
                ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_SIZE),
                ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_SIZE),
                # Never share the port with another process's server.
                ("grpc.so_reuseport", 0),
            ],
        )
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(self._service, server)
        add_health_service(server, self._service)
        bound = server.add_insecure_port(f"{self.host}:{port}")
        if bound == 0:
            executor.shutdown(wait=False)
            raise OSError(f"could not bind the gRPC port {self.host}:{port}")
        server.start()
        self.grpc_port = bound
        self._grpc_server, self._grpc_executor = server, executor
        self._grpc_serve_thread = _grpc_serve_thread(server)
        if self._grpc_serve_thread is not None:
            self._grpc_serve_thread.name = f"{self.thread_prefix}grpc-serve"

    def _stop_grpc(self) -> None:
        server, executor = self._grpc_server, self._grpc_executor
        serve_thread = self._grpc_serve_thread
        self._grpc_server = self._grpc_executor = self._grpc_serve_thread = None
        if server is not None:
            # The event is set by grpc's serving thread just before that thread returns:
            # join it too, or it may still be alive when stop() returns.
            server.stop(grace=None).wait()
        if serve_thread is not None:
            serve_thread.join()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _grpc_serve_thread(server: grpc.Server) -> threading.Thread | None:
    """The thread grpc's ``server.start()`` started to poll its completion queue.

    grpc neither names it nor hands it out. It is the running thread whose target got
    this server's state object as its argument (grpc's ``_server._start``). None if a
    grpc release does it differently: stop() then just does not join it.
    """
    state = getattr(server, "_state", None)
    if state is None:
        return None
    for thread in threading.enumerate():
        args = getattr(thread, "_args", None)
        if isinstance(args, tuple) and len(args) == 1 and args[0] is state:
            return thread
    return None
