"""The Weaviate target: the only module that imports `weaviate`.

One client per process and configuration, created lazily under a lock,
reused by every thread, and closed at exit or when the configuration changes
(no Con004 warning). Writes go through gRPC batches (`insert_many` is an
upsert: an object the index lost is recreated, never a 404).
"""

import atexit
import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import weaviate
import weaviate.classes.config as wc
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.collections.classes.data import DataObject
from weaviate.exceptions import (
    AuthenticationFailedError,
    UnexpectedStatusCodeError,
    WeaviateBaseError,
    WeaviateInsertManyAllFailedError,
)
from weaviate.proto.v1 import base_pb2, search_get_pb2

from ..config import WeaviateSettings, weaviate_settings
from ..documents import DATE_FIELDS, FIELDS, INT_FIELDS
from .base import SearchHit, SearchPage, ServerInfo, TargetUnavailable

logger = logging.getLogger("agira.index.weaviate")

VECTOR_NAME = "default"  # the collection's one named vector
T2V_MODULE = "text2vec-transformers"
FETCH_PAGE = 1000
# The reconcile walk: ids and versions per cursor page (about 60 bytes each on the
# wire; at most QUERY_MAXIMUM_RESULTS, 10,000 by default), and whole documents per
# fetch by id.
VERSION_PAGE = 5000
DOCUMENT_PAGE = 500


def collection_properties() -> list[wc.Property]:
    """The AgiraObject schema: dates as date, the size as int, the rest text."""

    def data_type(name: str) -> wc.DataType:
        if name in DATE_FIELDS:
            return wc.DataType.DATE
        if name in INT_FIELDS:
            return wc.DataType.INT
        return wc.DataType.TEXT

    return [wc.Property(name=name, data_type=data_type(name)) for name in FIELDS]


def redact(message: str, secret: str) -> str:
    return message.replace(secret, "***") if secret else message


class WeaviateTarget:
    name = "weaviate"
    label = "Weaviate"

    def __init__(self, config: WeaviateSettings):
        self.config = config
        # Weaviate's own module computes the vectors: Agira sends none, and
        # records this key as the model of every vector written.
        self.server_vectorizer = (
            f"weaviate:{T2V_MODULE}" if config.vectorizer == T2V_MODULE else None
        )
        self._client: weaviate.WeaviateClient | None = None
        self._collection_ready = False
        self._lock = threading.Lock()

    def session(self) -> contextlib.AbstractContextManager[None]:
        # The client is shared and thread-safe: nothing to hold.
        return contextlib.nullcontext()

    # -- connection ----------------------------------------------------------
    def _connect(self) -> weaviate.WeaviateClient:
        config = self.config
        if not config.enabled:
            raise TargetUnavailable("Weaviate sync is disabled in the admin.", reason="disabled")
        if not config.configured:
            raise TargetUnavailable(
                "Weaviate is not configured: set its URL in the admin.", reason="misconfigured"
            )
        client = None
        try:
            # The client's own start-up checks also ask pypi.org for the newest
            # client version: an outside request on every connect. Agira makes
            # the checks that matter itself: the server answers, accepts the key
            # (GET /v1/meta) and is live over HTTP and gRPC.
            client = weaviate.connect_to_custom(
                http_host=config.host,
                http_port=config.http_port,
                http_secure=config.secure,
                grpc_host=config.host,
                grpc_port=config.grpc_port,
                grpc_secure=config.secure,
                auth_credentials=Auth.api_key(config.api_key) if config.api_key else None,
                additional_config=AdditionalConfig(
                    timeout=Timeout(
                        init=config.connect_timeout,
                        query=config.query_timeout,
                        insert=config.insert_timeout,
                    )
                ),
                skip_init_checks=True,
            )
            client.get_meta()
            if not client.is_live():
                raise TargetUnavailable(
                    f"Weaviate at {config.describe()} is not reachable "
                    "(its liveness check over HTTP and gRPC failed)."
                )
            return client
        except TargetUnavailable:
            client.close()
            raise
        except Exception as exc:
            if client is not None:
                client.close()
            raise self._unavailable(exc, "connect to") from exc

    def client(self) -> weaviate.WeaviateClient:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._collection_ready = False
        if client is not None:
            try:
                client.close()
            except Exception:
                logger.exception("Closing the Weaviate client failed")

    def _unavailable(self, exc: BaseException, action: str) -> TargetUnavailable:
        """Turn a client error into a safe, specific message."""
        text = str(getattr(exc, "message", "") or exc)
        cause = exc.__cause__ or exc.__context__
        if cause is not None and str(cause) and str(cause) not in text:
            # The client's own words can be thin ("Details: ."): add the cause.
            text = f"{text.rstrip(' .')} ({type(cause).__name__}: {cause})"
        text = redact(text, self.config.api_key)
        status = _status_code(exc)
        if isinstance(exc, AuthenticationFailedError) or status in (401, 16):
            reason, message = (
                "auth",
                (f"Weaviate at {self.config.describe()} rejected the API key (401 Unauthorized)."),
            )
        elif status in (403, 7):  # 7: gRPC PERMISSION_DENIED
            reason, message = (
                "auth",
                (f"Weaviate at {self.config.describe()} refused access (403 Forbidden)."),
            )
        else:
            reason = "unreachable"
            message = f"Could not {action} Weaviate at {self.config.describe()}: {text}"
        return TargetUnavailable(message[:2000], reason=reason)

    def _probe(self) -> None:
        """Fail fast if the server is gone.

        The client retries an unavailable gRPC batch with exponential sleeps
        (seconds, not configurable); one liveness request (HTTP and gRPC
        health) first turns a dead server into an immediate, clear error.
        """
        client = self.client()
        try:
            live = client.is_live()
        except WeaviateBaseError as exc:
            self.close()
            raise self._unavailable(exc, "reach") from exc
        if not live:
            self.close()
            raise TargetUnavailable(
                f"Weaviate at {self.config.describe()} is not reachable "
                "(its liveness check over HTTP and gRPC failed)."
            )

    def _call(self, action: str, fn):
        """Run a client call; a failure of the server as a whole closes the
        client (the next call reconnects) and raises TargetUnavailable.

        Every call is preceded by the liveness probe: the client retries an
        unavailable gRPC call with sleeps of its own (a minute for a read), and
        a page or a save must never wait that long on a dead server.
        """
        collection = self.collection()
        self._probe()
        try:
            return fn(collection)
        except TargetUnavailable:
            raise
        except WeaviateBaseError as exc:
            self.close()
            raise self._unavailable(exc, action) from exc

    # -- schema --------------------------------------------------------------
    def collection(self):
        client = self.client()
        if not self._collection_ready:
            self.ensure_collection()
        return client.collections.use(self.config.collection_name)

    def ensure_collection(self) -> None:
        """Create the collection if missing; report a mismatching one clearly."""
        client = self.client()
        name = self.config.collection_name
        try:
            if not client.collections.exists(name):
                client.collections.create(
                    name, properties=collection_properties(), vector_config=self._vector_config()
                )
                logger.info("Created the Weaviate collection %s", name)
            else:
                self._check_schema(client.collections.use(name).config.get())
        except TargetUnavailable:
            raise
        except WeaviateBaseError as exc:
            if isinstance(exc, UnexpectedStatusCodeError) and exc.status_code == 422:
                # Another process created it between our check and create.
                self._check_schema(client.collections.use(name).config.get())
            else:
                self.close()
                raise self._unavailable(exc, "prepare the collection in") from exc
        self._collection_ready = True

    def _vector_config(self):
        index = wc.Configure.VectorIndex.hnsw(distance_metric=wc.VectorDistances.COSINE)
        if self.server_vectorizer:
            return wc.Configure.Vectors.text2vec_transformers(
                name=VECTOR_NAME, source_properties=["title", "text"], vector_index_config=index
            )
        return wc.Configure.Vectors.self_provided(name=VECTOR_NAME, vector_index_config=index)

    def _check_schema(self, config) -> None:
        expected = {p.name: p.dataType.value for p in collection_properties()}
        actual = {p.name: p.data_type.value for p in config.properties}
        missing = sorted(set(expected) - set(actual))
        wrong = sorted(n for n in expected if n in actual and actual[n] != expected[n])
        if missing or wrong:
            problems = []
            if missing:
                problems.append(f"missing properties {', '.join(missing)}")
            problems.extend(f"property {n} is {actual[n]}, expected {expected[n]}" for n in wrong)
            raise TargetUnavailable(
                f"The Weaviate collection {self.config.collection_name} exists with a different "
                f"schema ({'; '.join(problems)}). Agira does not alter it: delete it or set "
                "another collection name in the admin.",
                reason="misconfigured",
            )
        self._check_vectors(config)

    def _check_vectors(self, config) -> None:
        """The collection must have the named vector Agira writes, vectorised
        by whom the admin says; an older collection without it is reported
        with the fix, never altered."""
        vectors = getattr(config, "vector_config", None) or {}
        named = vectors.get(VECTOR_NAME)
        wanted = T2V_MODULE if self.server_vectorizer else "none"
        if named is None:
            raise TargetUnavailable(
                f"The Weaviate collection {self.config.collection_name} has no named vector "
                f"'{VECTOR_NAME}' (it was made before Agira stored vectors). Agira does not alter "
                "it: delete it (Agira recreates it and `manage.py sync_weaviate --full` refills "
                "it) or set another collection name in the admin.",
                reason="misconfigured",
            )
        actual = getattr(getattr(named, "vectorizer", None), "vectorizer", None)
        actual = getattr(actual, "value", actual) or "none"
        if actual != wanted:
            raise TargetUnavailable(
                f"The Weaviate collection {self.config.collection_name} is vectorised by "
                f"{actual}, the admin says {wanted}. Delete the collection (then run "
                "`manage.py sync_weaviate --full`) or set another collection name.",
                reason="misconfigured",
            )

    # -- the target interface ------------------------------------------------
    def ping(self) -> ServerInfo:
        client = self.client()
        try:
            meta = client.get_meta()
            ready = client.is_ready()
        except WeaviateBaseError as exc:
            self.close()
            raise self._unavailable(exc, "reach") from exc
        return ServerInfo(version=str(meta.get("version", "")), ready=bool(ready))

    def upsert_many(
        self,
        documents: list[tuple[uuid.UUID, dict]],
        *,
        vectors=None,
        embedding_model: str = "",
    ) -> dict[int, str]:
        """Write documents with their vectors (sent in the gRPC batch as raw
        float32) under the named vector; an upsert, whatever the index holds."""
        if not documents:
            return {}
        objects = [
            DataObject(
                properties={k: v for k, v in doc.items() if v is not None},
                uuid=oid,
                vector=None if vectors is None else {VECTOR_NAME: vectors[index].tolist()},
            )
            for index, (oid, doc) in enumerate(documents)
        ]

        def write(collection):
            try:
                result = collection.data.insert_many(objects)
            except WeaviateInsertManyAllFailedError as exc:
                message = redact(exc.message, self.config.api_key)
                return dict.fromkeys(range(len(objects)), message)
            return {index: error.message for index, error in result.errors.items()}

        return self._call_for_objects("write to", write, len(objects))

    def _call_for_objects(self, action: str, fn, count: int) -> dict[int, str]:
        """A write whose error answer from a live server fails its objects
        (returned by index) instead of the whole target."""
        try:
            return self._call(action, fn)
        except TargetUnavailable as exc:
            if exc.reason != "unreachable" or not request_refused(exc.__cause__):
                raise
            logger.warning("Weaviate refused a request about %d objects: %s", count, exc)
            return dict.fromkeys(range(count), str(exc))

    def delete_many(self, uuids: list[uuid.UUID]) -> dict[int, str]:
        if not uuids:
            return {}

        def delete(collection):
            result = collection.data.delete_many(
                where=Filter.by_id().contains_any(uuids), verbose=True
            )
            failed = {
                str(o.uuid): o.error or "delete failed"
                for o in result.objects or []
                if not o.successful
            }
            return {i: failed[str(u)] for i, u in enumerate(uuids) if str(u) in failed}

        return self._call_for_objects("delete from", delete, len(uuids))

    def fetch(self, object_uuid: uuid.UUID) -> dict | None:
        obj = self._call(
            "read from", lambda collection: collection.query.fetch_object_by_id(object_uuid)
        )
        return None if obj is None else _plain(obj.properties)

    def fetch_vector(self, object_uuid: uuid.UUID):
        """The stored vector of an object (a list of floats), or None."""
        obj = self._call(
            "read from",
            lambda collection: collection.query.fetch_object_by_id(
                object_uuid, include_vector=True
            ),
        )
        if obj is None:
            return None
        vector = (obj.vector or {}).get(VECTOR_NAME)
        return None if vector is None else list(vector)

    def exists_many(self, uuids: list[uuid.UUID]) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        for start in range(0, len(uuids), FETCH_PAGE):
            chunk = uuids[start : start + FETCH_PAGE]
            result = self._call(
                "read from",
                lambda collection, chunk=chunk: collection.query.fetch_objects(
                    filters=Filter.by_id().contains_any(chunk),
                    limit=len(chunk),
                    return_properties=["object_id"],
                ),
            )
            found.update(uuid.UUID(str(o.uuid)) for o in result.objects)
        return found

    def iter_documents(self) -> Iterator[tuple[uuid.UUID, dict]]:
        collection = self.collection()
        self._probe()
        try:
            for obj in collection.iterator(return_properties=list(FIELDS), cache_size=FETCH_PAGE):
                yield uuid.UUID(str(obj.uuid)), _plain(obj.properties)
        except WeaviateBaseError as exc:
            self.close()
            raise self._unavailable(exc, "read from") from exc

    # -- the reconcile walk -----------------------------------------------------
    # Ids, versions and documents for `reconcile.py`, read straight from the gRPC
    # replies: the client would turn every object into Python objects and every
    # date into a datetime with strptime, 9 of the 11 s a walk of 100,000
    # documents took. The requests are the protocol's own messages, sent through
    # the client's own call (authentication headers, timeout, retries).
    def _grpc_search(self):
        """The client's gRPC search call, or None where this client has none
        (then `supports_versions()` is False and reconcile walks the documents)."""
        connection = getattr(self.client(), "_connection", None)
        search = getattr(connection, "grpc_search", None)
        return search if callable(search) else None

    def supports_versions(self) -> bool:
        return self._grpc_search() is not None

    def mirror_key(self) -> str:
        """Which index this is, for the reconcile command's mirror file (no key)."""
        config = self.config
        return f"{config.url}|{config.http_port}|{config.grpc_port}|{config.collection_name}"

    def _search(self, request: search_get_pb2.SearchRequest) -> search_get_pb2.SearchReply:
        search = self._grpc_search()
        if search is None:
            raise TargetUnavailable(
                "This weaviate-client has no gRPC search call to walk the index with.",
                reason="misconfigured",
            )
        try:
            return search(request)
        except WeaviateBaseError as exc:
            self.close()
            raise self._unavailable(exc, "read from") from exc

    def _request(self, **fields) -> search_get_pb2.SearchRequest:
        return search_get_pb2.SearchRequest(
            uses_123_api=True,
            uses_125_api=True,
            uses_127_api=True,
            collection=self.config.collection_name,
            metadata=search_get_pb2.MetadataRequest(uuid=True, last_update_time_unix=True),
            **fields,
        )

    def iter_versions(self) -> Iterator[list[tuple[bytes, int | None]]]:
        """Every object's id (16 bytes) and version, a page at a time, in id
        order: no properties, no vectors. The version is the object's last
        update time (ms), which Weaviate changes on every write of the object.
        The next page is asked for while this one is read (it starts after
        this one's last id)."""
        self.collection()
        self._probe()

        def page(after: str) -> search_get_pb2.SearchReply:
            return self._search(
                self._request(
                    limit=VERSION_PAGE,
                    after=after,
                    properties=search_get_pb2.PropertiesRequest(),  # none
                )
            )

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="agira-index-walk") as pool:
            pending = pool.submit(page, "")
            while True:
                results = pending.result().results
                more = len(results) == VERSION_PAGE
                if more:
                    pending = pool.submit(page, _uuid_text(results[-1].metadata.id_as_bytes))
                yield [
                    (
                        meta.id_as_bytes,
                        meta.last_update_time_unix if meta.last_update_time_unix_present else None,
                    )
                    for meta in (result.metadata for result in results)
                ]
                if not more:
                    return

    def fetch_versioned(self, uuids: list[bytes]) -> dict[bytes, tuple[dict, int | None]]:
        """The documents of these ids (16 bytes each) with their versions, each
        read together (one reply), by id; ids the index does not hold are absent."""
        found: dict[bytes, tuple[dict, int | None]] = {}
        if not uuids:
            return found
        self.collection()
        self._probe()
        for start in range(0, len(uuids), DOCUMENT_PAGE):
            chunk = [_uuid_text(raw) for raw in uuids[start : start + DOCUMENT_PAGE]]
            reply = self._search(
                self._request(
                    limit=len(chunk),
                    filters=base_pb2.Filters(
                        operator=base_pb2.Filters.OPERATOR_CONTAINS_ANY,
                        target=base_pb2.FilterTarget(property="_id"),
                        value_text_array=base_pb2.TextArray(values=chunk),
                    ),
                    properties=search_get_pb2.PropertiesRequest(non_ref_properties=FIELDS),
                )
            )
            for result in reply.results:
                meta = result.metadata
                fields = result.properties.non_ref_props.fields
                doc = {}
                for name in fields:  # through upb's map directly: items() is pure Python
                    value = fields[name]
                    kind = value.WhichOneof("kind")
                    doc[name] = None if kind in (None, "null_value") else getattr(value, kind)
                found[meta.id_as_bytes] = (
                    doc,
                    meta.last_update_time_unix if meta.last_update_time_unix_present else None,
                )
        return found

    def count(self) -> int:
        result = self._call(
            "read from", lambda collection: collection.aggregate.over_all(total_count=True)
        )
        return int(result.total_count or 0)

    def search(
        self,
        query: str,
        *,
        filters: dict[str, str],
        limit: int,
        offset: int,
        vector=None,
    ) -> SearchPage:
        """BM25 keyword search over title and text, or the nearest vectors
        (`vector`), with exact filters inside the query."""
        # A list is "any of these" (the organisations a user may see).
        conditions = [
            Filter.by_property(k).contains_any(list(v))
            if isinstance(v, (list, tuple, set, frozenset))
            else Filter.by_property(k).equal(v)
            for k, v in filters.items()
            if v or isinstance(v, (list, tuple, set, frozenset))
        ]
        where = Filter.all_of(conditions) if conditions else None

        def run(collection):
            # One more than a page says whether there is a next page.
            if vector is not None:
                return collection.query.near_vector(
                    near_vector=[float(x) for x in vector],
                    target_vector=VECTOR_NAME,
                    filters=where,
                    limit=limit + 1,
                    offset=offset,
                    return_metadata=MetadataQuery(distance=True),
                )
            return collection.query.bm25(
                query=query,
                query_properties=["title^2", "text"],
                filters=where,
                limit=limit + 1,
                offset=offset,
                return_metadata=MetadataQuery(score=True),
            )

        result = self._call("search", run)
        hits = [
            SearchHit(
                document=_plain(o.properties),
                score=o.metadata.score if vector is None else 1.0 - (o.metadata.distance or 0.0),
            )
            for o in result.objects[:limit]
        ]
        return SearchPage(hits=hits, total=None, has_next=len(result.objects) > limit)


# Answers that say the server, not the request, is in trouble: the target is
# unavailable. Any other error answering a write is about the objects it
# carried: they fail (an attempt counted each), and the target stays usable.
_UNAVAILABLE_HTTP = frozenset({401, 403, 408, 429, 502, 503, 504})
_UNAVAILABLE_GRPC = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "UNAUTHENTICATED", "PERMISSION_DENIED", "CANCELLED"}
)
# The same by number (the client's UnexpectedStatusCodeError carries a gRPC
# status as its number): CANCELLED 1, DEADLINE_EXCEEDED 4, PERMISSION_DENIED 7,
# UNAVAILABLE 14, UNAUTHENTICATED 16.
_UNAVAILABLE_GRPC_CODES = frozenset({1, 4, 7, 14, 16})


def request_refused(exc: BaseException | None) -> bool:
    """Whether the server answered this one request with an error about it
    (an HTTP 4xx/5xx or a gRPC status that is not about reachability, load or
    credentials). A refused connection or a timeout is not an answer."""
    seen = 0
    while exc is not None and seen < 6:
        if isinstance(exc, UnexpectedStatusCodeError):
            if exc.status_code < 100:  # a gRPC status, by number
                return exc.status_code not in _UNAVAILABLE_GRPC_CODES
            return exc.status_code not in _UNAVAILABLE_HTTP
        code = getattr(exc, "code", None)
        if callable(code) and hasattr(exc, "details"):  # a grpc.RpcError
            try:
                name = code().name
            except Exception:  # not a call that holds a status
                name = ""
            if name:
                return name not in _UNAVAILABLE_GRPC
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status behind a client error, looking through wrapped causes
    (a failed start-up wraps the 401 of the meta request)."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, UnexpectedStatusCodeError):
            return exc.status_code
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _uuid_text(raw: bytes) -> str:
    """16 bytes as a canonical uuid (what str(uuid.UUID(bytes=raw)) gives, faster)."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _plain(properties: dict) -> dict:
    """Properties as JSON-ready values (dates back to ISO strings)."""
    return {
        k: v.isoformat() if isinstance(v, datetime) else v for k, v in (properties or {}).items()
    }


# -- one target per process and configuration --------------------------------
_current: WeaviateTarget | None = None
_current_lock = threading.Lock()


def weaviate_target(config: WeaviateSettings | None = None) -> WeaviateTarget:
    """The process's Weaviate target for the current configuration.

    An edit in the admin changes the fingerprint: the old client is closed and
    the next call connects with the new settings.
    """
    global _current
    config = config or weaviate_settings()
    with _current_lock:
        if _current is not None and _current.config.fingerprint == config.fingerprint:
            _current.config = config  # e.g. `enabled` may have changed
            return _current
        old, _current = _current, WeaviateTarget(config)
    if old is not None:
        old.close()
    return _current


def close_weaviate() -> None:
    global _current
    with _current_lock:
        old, _current = _current, None
    if old is not None:
        old.close()


atexit.register(close_weaviate)
