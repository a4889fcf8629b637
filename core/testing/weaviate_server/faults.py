"""Fault switches and call counters of the Weaviate-compatible test server.

Both are plain thread-safe objects that the HTTP and gRPC front ends consult on every
request, so a test can flip a switch while the server runs and the very next request
sees it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

# Counter keys. REST calls are counted under "<METHOD> <route template>", for example
# "GET /v1/objects/{class}/{id}"; gRPC calls under "grpc <Rpc>", for example
# "grpc Search". These constants name the ones tests use most.
BATCH_OBJECTS = "grpc BatchObjects"
BATCH_DELETE = "grpc BatchDelete"
SEARCH = "grpc Search"
AGGREGATE = "grpc Aggregate"
HEALTH_CHECK = "grpc Health/Check"
# Objects carried by BatchObjects calls (not calls): "this drain sent 250 objects".
BATCH_OBJECTS_SENT = "objects sent in BatchObjects"
# Objects the store really created, changed or removed, whatever the protocol. A second
# sync run that "wrote nothing" leaves these three untouched.
OBJECTS_CREATED = "objects created"
OBJECTS_UPDATED = "objects updated"
OBJECTS_DELETED = "objects deleted"
# TCP connections the REST port accepted: keep-alive keeps this at one per client.
HTTP_CONNECTIONS = "http connections accepted"

ObjectPredicate = Callable[[str, str, Mapping[str, Any]], bool]
"""``(collection, uuid, properties) -> True`` to make that object fail inside a batch."""


class Counters:
    """Thread-safe call counters, keyed by endpoint or RPC (see the module constants).

    Reading a key that was never hit gives 0, so ``server.counters[BATCH_OBJECTS] == 1``
    reads naturally in a test.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def incr(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[key] += amount

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)

    def get(self, key: str) -> int:
        return self[key]

    def snapshot(self) -> dict[str, int]:
        """A copy of every non-zero counter."""
        with self._lock:
            return {k: v for k, v in self._counts.items() if v}

    def total(self, prefix: str = "") -> int:
        """Sum of the counters whose key starts with ``prefix`` ("grpc ", "GET ", ...)."""
        with self._lock:
            return sum(v for k, v in self._counts.items() if k.startswith(prefix))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def __repr__(self) -> str:
        return f"Counters({self.snapshot()!r})"


@dataclass
class _FailNext:
    remaining: int
    protocol: str  # "rest", "grpc" or "any"
    endpoints: frozenset[str] | None
    http_status: int
    grpc_code: grpc.StatusCode
    message: str


@dataclass
class _ObjectFailure:
    uuids: frozenset[str]
    where: ObjectPredicate | None
    message: str
    collection: str | None


@dataclass
class _State:
    latency_rest: float = 0.0
    latency_grpc: float = 0.0
    fail_next: list[_FailNext] = field(default_factory=list)
    object_failures: list[_ObjectFailure] = field(default_factory=list)
    reject_api_key: bool = False
    not_ready: bool = False


@dataclass(frozen=True)
class InjectedFailure:
    """What a front end must answer instead of serving the request."""

    http_status: int
    grpc_code: grpc.StatusCode
    message: str


class Faults:
    """Switches a test flips while the server runs.

    - :meth:`down` / :meth:`up`: close or reopen both listening sockets (same ports), so
      the client sees a real refused connection, not an error response.
    - :meth:`set_latency`: sleep before answering (REST, gRPC or both).
    - :meth:`fail_next`: answer the next N matching requests with an HTTP status (500 by
      default) or a gRPC status (UNAVAILABLE by default).
    - :meth:`fail_objects`: make chosen objects fail inside ``BatchObjects`` (by uuid or by a
      predicate on the properties); the rest of the batch is written.
    - :meth:`reject_api_key`: answer 401 / UNAUTHENTICATED even to the right key.
    - :meth:`set_not_ready`: ``/v1/.well-known/ready`` answers 503.

    :meth:`clear` turns everything off and brings the server back up.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        # Set (and replaced) to wake every request sleeping on injected latency. While
        # the server is stopping or down it stays set ("halted"), so a request that only
        # reaches delay() then does not start a sleep that nothing would wake any more.
        self._wake = threading.Event()
        self._halted = False
        self._down_hook: Callable[[], None] | None = None
        self._up_hook: Callable[[], None] | None = None
        self._is_down: Callable[[], bool] = lambda: False

    # -- wiring, done once by the server ------------------------------------------------
    def _bind(
        self,
        down: Callable[[], None],
        up: Callable[[], None],
        is_down: Callable[[], bool],
    ) -> None:
        self._down_hook, self._up_hook, self._is_down = down, up, is_down

    # -- outage --------------------------------------------------------------------------
    def down(self) -> None:
        """Stop listening on both ports and drop open connections (connection refused)."""
        if self._down_hook is None:
            raise RuntimeError("the server is not running")
        self._down_hook()

    def up(self) -> None:
        """Listen again on the same two ports."""
        if self._up_hook is None:
            raise RuntimeError("the server is not running")
        self._up_hook()

    @property
    def is_down(self) -> bool:
        return self._is_down()

    @contextmanager
    def outage(self) -> Iterator[None]:
        """``with server.faults.outage(): ...`` -- down inside the block, up after it."""
        self.down()
        try:
            yield
        finally:
            self.up()

    # -- latency -------------------------------------------------------------------------
    def set_latency(self, seconds: float, *, protocol: str = "any") -> None:
        """Delay every answer by ``seconds`` (``protocol``: "rest", "grpc" or "any")."""
        _check_protocol(protocol)
        with self._lock:
            if protocol in ("rest", "any"):
                self._state.latency_rest = seconds
            if protocol in ("grpc", "any"):
                self._state.latency_grpc = seconds

    def latency(self, protocol: str) -> float:
        with self._lock:
            return self._state.latency_rest if protocol == "rest" else self._state.latency_grpc

    def delay(self, protocol: str) -> bool:
        """Sleep the injected latency (called by the front ends before answering).

        The sleep ends early on :meth:`clear`, ``down()`` or ``stop()``, so a request
        left sleeping by one test never holds up the next one or the shutdown. Returns
        False when it was cut short: the front end then drops the request unanswered.
        Serving it would let a request the client gave up on during one test write into
        the store after the reset, in the middle of the next test.
        """
        with self._lock:
            seconds = self._state.latency_rest if protocol == "rest" else self._state.latency_grpc
            wake = self._wake
        if seconds > 0:
            return not wake.wait(seconds)
        return True

    def interrupt_delays(self) -> None:
        """Wake every request sleeping on injected latency; later requests sleep again."""
        with self._lock:
            self._wake.set()
            if not self._halted:
                self._wake = threading.Event()

    def _halt_delays(self) -> None:
        """Wake every sleeping request and cut every later delay short at once, until
        :meth:`_resume_delays` (called by the server on stop/down and start/up).

        Waking only the requests already asleep is not enough on shutdown: a request read
        a moment later would start a fresh sleep that the shutdown then has to wait out.
        """
        with self._lock:
            self._halted = True
            self._wake.set()

    def _resume_delays(self) -> None:
        with self._lock:
            if self._halted:
                self._halted = False
                self._wake = threading.Event()

    # -- failing requests ----------------------------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        *,
        protocol: str = "any",
        endpoints: Iterable[str] | None = None,
        http_status: int = 500,
        grpc_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        message: str = "injected fault",
    ) -> None:
        """Fail the next ``n`` requests that match.

        ``endpoints`` narrows the match to counter keys such as ``"POST /v1/objects"`` or
        ``"grpc BatchObjects"`` (the same keys :class:`Counters` uses). Health checks and
        ``/.well-known`` probes only fail when named explicitly.
        """
        _check_protocol(protocol)
        if n < 1:
            raise ValueError("n must be at least 1")
        rule = _FailNext(
            remaining=n,
            protocol=protocol,
            endpoints=frozenset(endpoints) if endpoints is not None else None,
            http_status=http_status,
            grpc_code=grpc_code,
            message=message,
        )
        with self._lock:
            self._state.fail_next.append(rule)

    def take_failure(self, protocol: str, endpoint: str) -> InjectedFailure | None:
        """Consume one matching ``fail_next`` slot, if any (called by the front ends)."""
        probe = endpoint.endswith(("Health/Check", "/.well-known/ready", "/.well-known/live"))
        with self._lock:
            for rule in self._state.fail_next:
                if rule.protocol not in (protocol, "any"):
                    continue
                if rule.endpoints is not None:
                    if endpoint not in rule.endpoints:
                        continue
                elif probe:
                    continue
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._state.fail_next.remove(rule)
                return InjectedFailure(rule.http_status, rule.grpc_code, rule.message)
        return None

    # -- failing objects inside a batch ------------------------------------------------
    def fail_objects(
        self,
        *,
        uuids: Iterable[str] = (),
        where: ObjectPredicate | None = None,
        message: str = "injected object failure",
        collection: str | None = None,
    ) -> None:
        """Make matching objects fail inside ``BatchObjects`` until :meth:`clear`.

        An object fails when its uuid is in ``uuids`` or ``where(collection, uuid,
        properties)`` is true (``properties`` as the client sent them). The batch reply
        lists it by index with ``message``, exactly like a server-side validation error.
        """
        rule = _ObjectFailure(
            uuids=frozenset(str(u).lower() for u in uuids),
            where=where,
            message=message,
            collection=collection,
        )
        with self._lock:
            self._state.object_failures.append(rule)

    def object_failure(
        self, collection: str, uuid: str, properties: Mapping[str, Any]
    ) -> str | None:
        with self._lock:
            rules = list(self._state.object_failures)
        for rule in rules:
            if rule.collection is not None and rule.collection != collection:
                continue
            if uuid in rule.uuids or (
                rule.where is not None and rule.where(collection, uuid, properties)
            ):
                return rule.message
        return None

    @property
    def has_object_failures(self) -> bool:
        with self._lock:
            return bool(self._state.object_failures)

    # -- auth and readiness --------------------------------------------------------------
    def reject_api_key(self, reject: bool = True) -> None:
        """Treat every API key as invalid (401 / UNAUTHENTICATED), as after a key rotation."""
        with self._lock:
            self._state.reject_api_key = reject

    @property
    def rejecting_api_key(self) -> bool:
        with self._lock:
            return self._state.reject_api_key

    def set_not_ready(self, not_ready: bool = True) -> None:
        with self._lock:
            self._state.not_ready = not_ready

    @property
    def not_ready(self) -> bool:
        with self._lock:
            return self._state.not_ready

    # -- reset ---------------------------------------------------------------------------
    def clear(self) -> None:
        """Turn every switch off and, if the server is down, bring it back up."""
        with self._lock:
            self._state = _State()
        self.interrupt_delays()
        if self._up_hook is not None and self._is_down():
            self._up_hook()


def _check_protocol(protocol: str) -> None:
    if protocol not in ("rest", "grpc", "any"):
        raise ValueError(f"protocol must be 'rest', 'grpc' or 'any', not {protocol!r}")
