import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


class TargetUnavailable(Exception):
    """The target as a whole cannot be used now: unreachable, the API key was
    rejected, or it is misconfigured. No object is to blame, so no object's
    attempts are counted; the changes wait.

    `reason` is one of "unreachable", "auth", "misconfigured", "disabled", and
    the message is safe to show (it never contains a secret).
    """

    def __init__(self, message: str, *, reason: str = "unreachable"):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ServerInfo:
    version: str
    ready: bool


@dataclass(frozen=True)
class SearchHit:
    document: dict
    score: float | None


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    total: int | None  # None where the target cannot count matches cheaply
    has_next: bool


class Target(Protocol):
    """What the sync engine needs from an index."""

    name: str  # stable key in sync records: "weaviate", "qdrant"
    label: str  # for people: "Weaviate", "embedded index"

    def ping(self) -> ServerInfo: ...
    def ensure_collection(self) -> None: ...
    def upsert_many(self, documents: list[tuple[uuid.UUID, dict]]) -> dict[int, str]:
        """Write documents (insert or replace); returns error messages by index."""
        ...

    def delete_many(self, uuids: list[uuid.UUID]) -> dict[int, str]: ...
    def fetch(self, object_uuid: uuid.UUID) -> dict | None: ...
    def exists_many(self, uuids: list[uuid.UUID]) -> set[uuid.UUID]: ...
    def iter_documents(self) -> Iterator[tuple[uuid.UUID, dict]]: ...
    def count(self) -> int: ...
    def search(
        self, query: str, *, filters: dict[str, str], limit: int, offset: int
    ) -> SearchPage: ...
    def session(self) -> AbstractContextManager[None]:
        """Hold the target for a unit of work (a drain, a page's reads)."""
        ...

    def close(self) -> None: ...


class VersionedTarget(Target, Protocol):
    """A target whose objects carry a version that changes on every write of
    the object (Weaviate: the last update time). The reconcile command then
    walks ids and versions only and reads a document again only when its
    version is not the one it last hashed (see reconcile.py)."""

    def supports_versions(self) -> bool: ...
    def iter_versions(self) -> Iterator[list[tuple[bytes, int | None]]]:
        """Every object's id (its 16 bytes) and version (None: unknown), a page
        at a time, in id order."""
        ...

    def fetch_versioned(self, uuids: list[bytes]) -> dict[bytes, tuple[dict, int | None]]:
        """Documents by id with their versions, each pair read together."""
        ...


def probe(target: Target) -> tuple[ServerInfo, int]:
    """What an admin's "Test connection" asks a target made for the purpose:
    ping it, make its collection (or schema), count its objects, and close it.
    Raises TargetUnavailable with the reason."""
    try:
        info = target.ping()
        target.ensure_collection()
        return info, target.count()
    finally:
        target.close()


def supports_versions(target: Target) -> bool:
    check = getattr(target, "supports_versions", None)
    return bool(check and check())


class HeldSessions:
    """`session()` for a target that holds something (a folder, a database)
    only while it works: the outermost session of any thread opens it, the end
    of that session lets it go. Reentrant; one session at a time per target.
    Subclasses set `_lock` (an RLock) and `_depth` (0), and define `_open()`
    and `_let_go()`."""

    _lock: threading.RLock
    _depth: int
    _open: Callable[[], None]
    _let_go: Callable[[], None]

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._open()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._let_go()
