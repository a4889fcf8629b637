"""The Qdrant target (seed 004's store): the only module that imports `qdrant_client`.

Two modes:

* **Server** (production): a Qdrant server at `AGIRA_QDRANT_URL` (with
  `AGIRA_QDRANT_API_KEY`), with payload indexes on the filter fields.
* **Local**: qdrant-client's local mode, a folder (`AGIRA_QDRANT_PATH`) and no
  server; one process at a time, the collection held in memory while open. For
  trials and tests; the default embedded index is `embedded.py`.

Each point carries the AgiraObject payload and one named dense vector
(`default`, cosine) of the embedder's dimension.

Only one process may open a local folder at a time (Qdrant locks it). The web
server, the task worker and the commands therefore take turns: every use of
the folder happens inside a *session* that holds an exclusive file lock
(`<folder>/agira.lock`), opens the client, does its work and closes it again.
A drain holds one session for all its batches; a page holds one for its read.
Waiting longer than `AGIRA_QDRANT_LOCK_TIMEOUT` seconds for the folder reports
the target busy (its changes wait, like for any unavailable target).
"""

import fcntl
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ..documents import FIELDS
from .base import HeldSessions, SearchHit, SearchPage, ServerInfo, TargetUnavailable

logger = logging.getLogger("agira.index.qdrant")

VECTOR_NAME = "default"
KEYWORD_FIELDS = ("type", "project_id", "org_id", "status", "object_id")
TEXT_FIELDS = ("title", "text")
SCROLL_PAGE = 1000


@dataclass(frozen=True)
class QdrantSettings:
    enabled: bool
    path: str
    url: str
    api_key: str = field(repr=False)
    collection_name: str
    timeout: float
    lock_timeout: float

    @property
    def local(self) -> bool:
        return not self.url

    def describe(self) -> str:
        return f"the embedded index in {self.path}" if self.local else f"Qdrant at {self.url}"


def qdrant_settings() -> QdrantSettings:
    return QdrantSettings(
        enabled=settings.AGIRA_QDRANT_ENABLED,
        path=str(settings.AGIRA_QDRANT_PATH),
        url=settings.AGIRA_QDRANT_URL,
        api_key=settings.AGIRA_QDRANT_API_KEY,
        collection_name=settings.AGIRA_QDRANT_COLLECTION,
        timeout=settings.AGIRA_QDRANT_TIMEOUT,
        lock_timeout=settings.AGIRA_QDRANT_LOCK_TIMEOUT,
    )


class FolderLock:
    """An exclusive lock on a folder, shared fairly between processes."""

    def __init__(self, folder: Path):
        self.path = folder / "agira.lock"
        self._fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.02)
                continue
            self._fd = fd
            return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class QdrantTarget(HeldSessions):
    name = "qdrant"

    def __init__(self, config: QdrantSettings):
        self.config = config
        self.label = "Qdrant (local mode)" if config.local else "Qdrant"
        self._client: QdrantClient | None = None
        self._depth = 0
        self._lock = threading.RLock()
        self._folder_lock = FolderLock(Path(config.path)) if config.local else None
        self._collection_ready = False
        self._vector_size: int | None = None
        # Our own call counts (batches written and deleted), for tests and benchmarks.
        self.stats: Counter[str] = Counter()

    # -- sessions (HeldSessions: reentrant, thread-safe) ----------------------
    def _let_go(self) -> None:
        if self.config.local:
            self._shut()  # a server's client stays open; the local folder is shared

    def _open(self) -> None:
        if not self.config.enabled:
            raise TargetUnavailable("Qdrant is switched off.", reason="disabled")
        if self._client is not None:
            return
        if self.config.local:
            if not self._folder_lock.acquire(self.config.lock_timeout):
                raise TargetUnavailable(
                    f"{self.config.describe()} is busy: another process held it for more "
                    f"than {self.config.lock_timeout:g} s.",
                    reason="unreachable",
                )
            try:
                self._client = QdrantClient(path=self.config.path)
                self._tune_local_storage()
            except Exception as exc:
                self._folder_lock.release()
                self._client = None
                raise TargetUnavailable(
                    f"Could not open {self.config.describe()}: {exc}", reason="misconfigured"
                ) from exc
        else:
            self._client = QdrantClient(
                url=self.config.url,
                api_key=self.config.api_key or None,
                timeout=int(max(1, self.config.timeout)),
            )
        self._collection_ready = False

    def _shut(self) -> None:
        client, self._client = self._client, None
        try:
            if client is not None:
                client.close()
        finally:
            if self._folder_lock is not None:
                self._folder_lock.release()

    def close(self) -> None:
        with self._lock:
            if self._depth == 0 and self._client is not None:
                self._shut()

    def _tune_local_storage(self) -> None:
        """Local mode commits SQLite once per point; in WAL mode with normal
        sync a commit no longer waits for the disk (about fifty times faster writes). The
        index can always be rebuilt from the database, so this durability is
        the right trade. If a client upgrade moves the internals, writes stay
        correct, only slower, and the log says so."""
        try:
            for collection in self._client._client.collections.values():
                _tune_connection(collection.storage.storage)
        except AttributeError:
            logger.warning("Could not tune the embedded index's storage; writes will be slower")

    # -- helpers -------------------------------------------------------------
    def _unavailable(self, exc: BaseException, action: str) -> TargetUnavailable:
        text = str(exc)
        if self.config.api_key:
            text = text.replace(self.config.api_key, "***")
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            return TargetUnavailable(
                f"{self.config.describe()} rejected the API key ({status}).", reason="auth"
            )
        return TargetUnavailable(f"Could not {action} {self.config.describe()}: {text}"[:2000])

    def _run(self, action: str, fn, *, missing=None, write_size: int | None = None):
        """Run `fn(client)` on the collection. Reads of a collection not yet
        made answer `missing`; a write (`write_size`: its vectors' dimension,
        0 for none) creates it, with a named vector of that dimension."""
        with self.session():
            try:
                if not self._ensure(write_size):
                    return missing
                return fn(self._client)
            except TargetUnavailable:
                raise
            except (ResponseHandlingException, UnexpectedResponse, ConnectionError, OSError) as exc:
                raise self._unavailable(exc, action) from exc

    def _ensure(self, write_size: int | None) -> bool:
        name = self.config.collection_name
        client = self._client
        if not self._collection_ready:
            if not client.collection_exists(name):
                if write_size is None:
                    return False
                self._create(name, write_size)
                self._vector_size = write_size or None
            else:
                vectors = client.get_collection(name).config.params.vectors
                have = vectors.get(VECTOR_NAME) if isinstance(vectors, dict) else None
                self._vector_size = have.size if have is not None else None
            self._collection_ready = True
        if write_size and write_size != self._vector_size:
            shape = (
                f"{self._vector_size}-dimensional vectors"
                if self._vector_size
                else f"no vector '{VECTOR_NAME}'"
            )
            raise TargetUnavailable(
                f"The collection {name} in {self.config.describe()} has {shape}; the embedder "
                f"makes {write_size}-dimensional ones. Nothing was written. Agira does not alter "
                "it: delete it (then run `manage.py sync_weaviate --full --target qdrant`) or set "
                "another collection name (AGIRA_QDRANT_COLLECTION).",
                reason="misconfigured",
            )
        return True

    def _create(self, name: str, size: int) -> None:
        client = self._client
        vectors = (
            {VECTOR_NAME: qm.VectorParams(size=size, distance=qm.Distance.COSINE)} if size else {}
        )
        client.create_collection(name, vectors_config=vectors)
        if not self.config.local:
            # Local mode filters by scanning; indexes matter on a server.
            for key in KEYWORD_FIELDS:
                client.create_payload_index(name, key, qm.PayloadSchemaType.KEYWORD)
            for key in TEXT_FIELDS:
                client.create_payload_index(
                    name,
                    key,
                    qm.TextIndexParams(
                        type=qm.TextIndexType.TEXT,
                        tokenizer=qm.TokenizerType.WORD,
                        lowercase=True,
                    ),
                )
        logger.info("Created the collection %s in %s", name, self.config.describe())
        if self.config.local:
            self._tune_local_storage()

    # -- the target interface ------------------------------------------------
    def ensure_collection(self) -> None:
        self._run("prepare", lambda client: None)  # made by the first write

    def ping(self) -> ServerInfo:
        def info(client: QdrantClient) -> ServerInfo:
            if self.config.local:
                return ServerInfo(version="local", ready=True)
            client.get_collections()
            return ServerInfo(version=str(client.info().version), ready=True)

        with self.session():
            try:
                return info(self._client)
            except (ResponseHandlingException, UnexpectedResponse, ConnectionError, OSError) as exc:
                raise self._unavailable(exc, "reach") from exc

    def upsert_many(
        self,
        documents: list[tuple[uuid.UUID, dict]],
        *,
        vectors=None,
        embedding_model: str = "",
    ) -> dict[int, str]:
        if not documents:
            return {}
        points = [
            qm.PointStruct(
                id=str(oid),
                vector={} if vectors is None else {VECTOR_NAME: vectors[index].tolist()},
                payload=doc,
            )
            for index, (oid, doc) in enumerate(documents)
        ]
        name = self.config.collection_name

        def write(client: QdrantClient) -> dict[int, str]:
            self.stats["upsert batches"] += 1
            self.stats["upserted points"] += len(points)
            try:
                client.upsert(name, points=points, wait=True)
                return {}
            except (ResponseHandlingException, ConnectionError, OSError):
                raise
            except Exception as exc:
                # Qdrant refuses a batch as a whole: find the culprits one by one.
                logger.warning("A batch was refused (%s); retrying its points one by one", exc)
                errors = {}
                for index, point in enumerate(points):
                    try:
                        client.upsert(name, points=[point], wait=True)
                    except (ResponseHandlingException, ConnectionError, OSError):
                        raise
                    except Exception as point_exc:
                        errors[index] = str(point_exc)[:2000]
                return errors

        size = 0 if vectors is None else int(vectors.shape[1])
        return self._run("write to", write, write_size=size)

    def delete_many(self, uuids: list[uuid.UUID]) -> dict[int, str]:
        if not uuids:
            return {}

        def delete(client: QdrantClient) -> dict[int, str]:
            self.stats["delete batches"] += 1
            try:
                client.delete(
                    self.config.collection_name,
                    points_selector=qm.PointIdsList(points=[str(u) for u in uuids]),
                    wait=True,
                )
            except UnexpectedResponse as exc:
                if exc.status_code in (401, 403, 408, 429, 502, 503, 504):
                    raise
                # An error answering this request: its objects fail, not the target.
                logger.warning("Qdrant refused deleting %d points: %s", len(uuids), exc)
                return dict.fromkeys(range(len(uuids)), str(exc)[:2000])
            return {}

        return self._run("delete from", delete, missing={})

    def fetch(self, object_uuid: uuid.UUID) -> dict | None:
        points = self._run(
            "read from",
            lambda client: client.retrieve(
                self.config.collection_name, ids=[str(object_uuid)], with_payload=True
            ),
            missing=[],
        )
        return dict(points[0].payload) if points else None

    def fetch_vector(self, object_uuid: uuid.UUID):
        points = self._run(
            "read from",
            lambda client: client.retrieve(
                self.config.collection_name,
                ids=[str(object_uuid)],
                with_payload=False,
                with_vectors=[VECTOR_NAME],
            ),
            missing=[],
        )
        if not points:
            return None
        vector = (points[0].vector or {}).get(VECTOR_NAME)
        return None if vector is None else list(vector)

    def exists_many(self, uuids: list[uuid.UUID]) -> set[uuid.UUID]:
        if not uuids:
            return set()
        points = self._run(
            "read from",
            lambda client: client.retrieve(
                self.config.collection_name, ids=[str(u) for u in uuids], with_payload=False
            ),
            missing=[],
        )
        return {uuid.UUID(str(p.id)) for p in points}

    def iter_documents(self) -> Iterator[tuple[uuid.UUID, dict]]:
        with self.session():
            offset = None
            while True:
                page, offset = self._run(
                    "read from",
                    lambda client, offset=offset: client.scroll(
                        self.config.collection_name,
                        limit=SCROLL_PAGE,
                        offset=offset,
                        with_payload=list(FIELDS),
                        with_vectors=False,
                    ),
                    missing=([], None),
                )
                for point in page:
                    yield uuid.UUID(str(point.id)), dict(point.payload)
                if offset is None:
                    return

    def count(self) -> int:
        result = self._run(
            "read from",
            lambda client: client.count(self.config.collection_name, exact=True),
            missing=qm.CountResult(count=0),
        )
        return int(result.count)

    def search(
        self,
        query: str,
        *,
        filters: dict[str, str],
        limit: int,
        offset: int,
        vector=None,
    ) -> SearchPage:
        """The nearest vectors (`vector`), or a full-text match on title or
        text (every word; Qdrant has no BM25, so matches come in index order),
        with exact filters inside the query."""
        # A list is "any of these" (the organisations a user may see).
        must = [
            qm.FieldCondition(key=key, match=qm.MatchAny(any=list(value)))
            if isinstance(value, (list, tuple, set, frozenset))
            else qm.FieldCondition(key=key, match=qm.MatchValue(value=value))
            for key, value in filters.items()
            if value or isinstance(value, (list, tuple, set, frozenset))
        ]
        words = [w for w in query.split() if w]
        # Every word must appear in the title or the text.
        for word in words:
            must.append(
                qm.Filter(
                    should=[
                        qm.FieldCondition(key=key, match=qm.MatchText(text=word))
                        for key in TEXT_FIELDS
                    ]
                )
            )
        condition = qm.Filter(must=must)
        name = self.config.collection_name
        if vector is not None:
            vector_filter = qm.Filter(must=must[: len(must) - len(words)])

            def nearest(client: QdrantClient) -> SearchPage:
                result = client.query_points(
                    name,
                    query=[float(x) for x in vector],
                    using=VECTOR_NAME,
                    query_filter=vector_filter,
                    limit=limit + 1,
                    offset=offset,
                    with_payload=True,
                )
                hits = [
                    SearchHit(document=dict(p.payload), score=p.score)
                    for p in result.points[:limit]
                ]
                return SearchPage(hits=hits, total=None, has_next=len(result.points) > limit)

            return self._run(
                "search", nearest, missing=SearchPage(hits=[], total=0, has_next=False)
            )

        def run(client: QdrantClient) -> SearchPage:
            total = client.count(name, count_filter=condition, exact=True).count
            result = client.query_points(
                name, query_filter=condition, limit=limit, offset=offset, with_payload=True
            )
            hits = [SearchHit(document=dict(p.payload), score=None) for p in result.points]
            return SearchPage(hits=hits, total=int(total), has_next=offset + len(hits) < total)

        return self._run("search", run, missing=SearchPage(hits=[], total=0, has_next=False))


def _tune_connection(connection) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")


# -- one target per process and configuration ----------------------------------
_current: QdrantTarget | None = None
_current_lock = threading.Lock()


def qdrant_target(config: QdrantSettings | None = None) -> QdrantTarget:
    global _current
    config = config or qdrant_settings()
    with _current_lock:
        if _current is not None and _current.config == config:
            return _current
        old, _current = _current, QdrantTarget(config)
    if old is not None:
        old.close()
    return _current


def close_qdrant() -> None:
    global _current
    with _current_lock:
        old, _current = _current, None
    if old is not None:
        old.close()
