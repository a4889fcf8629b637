"""The in-memory object store behind both protocols.

One lock guards the whole store; every write replaces whole records (a stored
properties dict is never mutated), so a query can iterate a snapshot list taken under
the lock without holding it. Per collection the objects live in a dict keyed by the
canonical uuid string: fetch by id is one dict lookup.

Vectors go through the steps of a real write, in the server's order:

1. validation (``usecases/objects/validation/vector_validation.go``): an unnamed vector
   sent to a collection with one named vector becomes that named vector, a ``default``
   named vector sent to a legacy collection becomes its class-level vector, unknown
   names are refused;
2. vectorisation: a named vector with a vectoriser module (text2vec-transformers) that
   the write does not carry is computed by :attr:`Store.vectorizer` from the object's
   text (:func:`vectors.object_text`), and kept as it was when a replace leaves that
   text unchanged (the server's re-vectorisation check);
3. the index: the first vector of a name fixes its dimension for the collection, as an
   HNSW index learns it; a vector of another length is refused with the index's error.
"""

from __future__ import annotations

import struct
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.testing.weaviate_server import schema as sch
from core.testing.weaviate_server import vectors as vec
from core.testing.weaviate_server.faults import (
    OBJECTS_CREATED,
    OBJECTS_DELETED,
    OBJECTS_UPDATED,
    Counters,
)


class NotFoundError(Exception):
    """No such object or collection (the front ends answer 404 or an error status)."""


class AlreadyExistsError(Exception):
    pass


class ClassNotFoundError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"could not find class {name} in schema")
        self.name = name


class VectorValidationError(sch.ValidationError):
    """A vector the server's validator refuses (unknown name, ...). REST answers 422 with
    ``invalid object: <message>``; a batch lists the bare message for that object."""


class VectorWriteError(Exception):
    """The vector step of a write failed: wrong dimension for the index, no vectoriser
    module, the vectoriser failed. REST answers 500; a batch fails that object only."""


Vectorizer = Callable[[list[str]], Sequence[Sequence[float] | None]]
"""Stands in for a vectoriser module: a list of texts in, one vector (list of floats, or
None for "no vector") per text out, in the same order."""

VECTOR_SINGLE = 1  # base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32
LEGACY = ""  # the name under which the class-level (legacy) vector is kept
_DIMENSIONS_MISMATCH = "vector dimensions do not match the index dimensions"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object as stored. ``vector`` is float32 little-endian bytes, as gRPC ships it."""

    uuid: str
    properties: dict[str, Any]
    created: int  # ms since the epoch, like creationTimeUnix
    updated: int
    vector: bytes | None = None
    vectors: dict[str, tuple[bytes, int]] | None = None  # name -> (bytes, Vectors.type)

    def vector_for(self, name: str) -> bytes | None:
        """The stored vector ``name`` ("" = the class-level vector of a legacy collection)."""
        if name == LEGACY:
            return self.vector
        found = (self.vectors or {}).get(name)
        return None if found is None else found[0]

    def vector_list(self, name: str | None = None) -> list[float] | None:
        """A vector as floats: ``name``, or without it the class-level vector (legacy
        collections) or else the object's only named vector."""
        if name is None:
            if self.vector is not None:
                name = LEGACY
            elif self.vectors and len(self.vectors) == 1:
                name = next(iter(self.vectors))
            else:
                return None
        raw = self.vector_for(name)
        if raw is None:
            return None
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def pack_vector(values: Iterable[float]) -> bytes:
    values = list(values)
    return struct.pack(f"<{len(values)}f", *values)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Collection:
    __slots__ = ("cls", "dims", "objects", "sorted_ids")

    def __init__(self, cls: sch.ClassDef) -> None:
        self.cls = cls
        self.objects: dict[str, StoredObject] = {}
        # uuids in byte order for cursor pagination, rebuilt lazily after inserts/deletes
        self.sorted_ids: list[str] | None = None
        # vector name -> dimension, learned from the first vector written (an HNSW index
        # keeps it even when its objects are deleted)
        self.dims: dict[str, int] = {}


@dataclass(slots=True)
class _Write:
    """One object on its way into the store."""

    index: int
    col: _Collection
    uid: str
    props: dict[str, Any]
    vector: bytes | None
    vectors: dict[str, tuple[bytes, int]]
    old: StoredObject | None
    merge: bool = False
    error: str | None = None


class Store:
    """Collections and objects of one test server; safe to use from any thread.

    Tests read it directly::

        server.store.count("AgiraObject")
        server.store.objects("AgiraObject")   # {uuid: properties}
        server.store.get("AgiraObject", uid)  # properties or None
    """

    def __init__(self, counters: Counters | None = None, *, auto_schema: bool = True) -> None:
        self._lock = threading.RLock()
        self._collections: dict[str, _Collection] = {}
        self._counters = counters or Counters()
        self.auto_schema = auto_schema
        # The model behind the text2vec-transformers module (None: the module is absent).
        self.vectorizer: Vectorizer | None = None
        # objects written in the last seconds, for /v1/nodes batchStats.ratePerSecond
        self._rate_window: list[tuple[float, int]] = []

    # ------------------------------------------------------------------ inspection API
    def collections(self) -> list[str]:
        with self._lock:
            return sorted(self._collections)

    def exists(self, name: str) -> bool:
        with self._lock:
            return sch.capitalize_class_name(name) in self._collections

    def schema(self, name: str) -> dict[str, Any] | None:
        """The collection's JSON exactly as ``GET /v1/schema/{name}`` returns it."""
        cls = self.get_class(name)
        return None if cls is None else _deepcopy_json(cls.json)

    def count(self, name: str | None = None) -> int:
        """Objects in one collection (0 if it does not exist) or in all of them."""
        with self._lock:
            if name is None:
                return sum(len(c.objects) for c in self._collections.values())
            col = self._collections.get(sch.capitalize_class_name(name))
            return 0 if col is None else len(col.objects)

    def objects(self, name: str) -> dict[str, dict[str, Any]]:
        """``{uuid: properties}`` of one collection (copies, safe to modify)."""
        with self._lock:
            col = self._collections.get(sch.capitalize_class_name(name))
            if col is None:
                return {}
            return {uid: dict(o.properties) for uid, o in col.objects.items()}

    def get(self, name: str, uuid: Any) -> dict[str, Any] | None:
        """The properties of one object, or None."""
        record = self.record(name, uuid)
        return None if record is None else dict(record.properties)

    def record(self, name: str, uuid: Any) -> StoredObject | None:
        """The whole stored object (timestamps, vectors), or None. Read it, do not modify
        its ``properties``: they are the store's own (``get`` returns a copy)."""
        uid = sch.canonical_uuid(str(uuid))
        with self._lock:
            col = self._collections.get(sch.capitalize_class_name(name))
            if col is None or uid is None:
                return None
            return col.objects.get(uid)

    def put(
        self,
        name: str,
        uuid: Any,
        properties: Mapping[str, Any],
        *,
        vector: Iterable[float] | None = None,
        vectors: Mapping[str, Iterable[float]] | None = None,
    ) -> StoredObject:
        """Seed or overwrite one object directly (validated, vectorised and checked like a
        client write). ``vector`` goes to the collection's only named vector, or to the
        class-level vector of a legacy collection."""
        uid = sch.canonical_uuid(str(uuid))
        if uid is None:
            raise ValueError(f"not a uuid: {uuid!r}")
        packed = pack_vector(vector) if vector is not None else None
        named = (
            {k: (pack_vector(v), VECTOR_SINGLE) for k, v in vectors.items()} if vectors else None
        )
        return self.upsert(name, uid, properties, packed, named)

    def dimensions(self, name: str) -> dict[str, int]:
        """``{vector name: dimension}`` learned so far ("" = the class-level vector)."""
        with self._lock:
            col = self._collections.get(sch.capitalize_class_name(name))
            return {} if col is None else dict(col.dims)

    def vectorize(self, texts: list[str]) -> list[np.ndarray | None]:
        """Run :attr:`vectorizer` on query texts (``near_text``, ``hybrid``). Raises
        :class:`VectorWriteError` when there is none, and whatever the vectoriser raises."""
        vectorizer = self.vectorizer
        if vectorizer is None:
            raise VectorWriteError("no vectorizer module")
        return [
            None if b is None else np.frombuffer(b, dtype="<f4") for b in _run(vectorizer, texts)
        ]

    def reset(self) -> None:
        """Drop every collection and object."""
        with self._lock:
            self._collections.clear()
            self._rate_window.clear()

    def delete_all_objects(self, name: str) -> int:
        with self._lock:
            col = self._collections.get(sch.capitalize_class_name(name))
            if col is None:
                return 0
            n = len(col.objects)
            col.objects.clear()
            col.sorted_ids = None
            self._counters.incr(OBJECTS_DELETED, n)
            return n

    # ------------------------------------------------------------------ schema
    def get_class(self, name: str) -> sch.ClassDef | None:
        with self._lock:
            col = self._collections.get(sch.capitalize_class_name(name))
            return None if col is None else col.cls

    def all_classes(self) -> list[sch.ClassDef]:
        with self._lock:
            return [c.cls for _, c in sorted(self._collections.items())]

    def create_class(self, body: Any) -> sch.ClassDef:
        cls = sch.normalize_class(body)
        with self._lock:
            for existing in self._collections:
                if existing.lower() == cls.name.lower():
                    raise sch.SchemaError(f'class name "{cls.name}" already exists')
            self._collections[cls.name] = _Collection(cls)
        return cls

    def delete_class(self, name: str) -> bool:
        with self._lock:
            col = self._collections.pop(sch.capitalize_class_name(name), None)
            if col is not None and col.objects:
                self._counters.incr(OBJECTS_DELETED, len(col.objects))
            return col is not None

    def add_property(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            col = self._collection(name)
            col.cls, prop = sch.with_property(col.cls, body)
            return prop

    # ------------------------------------------------------------------ writes
    def insert(
        self,
        name: str,
        uid: str,
        properties: Mapping[str, Any] | None,
        vector: bytes | None,
        vectors: dict[str, tuple[bytes, int]] | None,
    ) -> StoredObject:
        """``POST /v1/objects``: create, 422 if the id exists."""
        with self._lock:
            col = self._collection_for_write(name)
            if uid in col.objects:
                raise AlreadyExistsError(f"id '{uid}' already exists")
            write = self._prepare(0, col, uid, properties, vector, vectors, None)
            self._finish_single(write)
            now = _now_ms()
            obj = StoredObject(uid, write.props, now, now, write.vector, write.vectors or None)
            self._store_new(col, obj)
            self._learn_dims(write)
            return obj

    def replace(
        self,
        name: str,
        uid: str,
        properties: Mapping[str, Any] | None,
        vector: bytes | None,
        vectors: dict[str, tuple[bytes, int]] | None,
    ) -> StoredObject:
        """``PUT``: replace properties and vectors; creation time is kept. 404 if absent."""
        with self._lock:
            col = self._collection(name)
            old = col.objects.get(uid)
            if old is None:
                raise NotFoundError(uid)
            write = self._prepare(0, col, uid, properties, vector, vectors, old)
            self._finish_single(write)
            obj = StoredObject(
                uid,
                write.props,
                old.created,
                max(_now_ms(), old.created),
                write.vector,
                write.vectors or None,
            )
            col.objects[uid] = obj
            self._counters.incr(OBJECTS_UPDATED)
            self._learn_dims(write)
            return obj

    def merge(
        self,
        name: str,
        uid: str,
        properties: Mapping[str, Any] | None,
        vector: bytes | None,
        vectors: dict[str, tuple[bytes, int]] | None,
    ) -> StoredObject:
        """``PATCH``: merge the given properties and vectors into the object (vectors not
        given are kept; a module's vector is recomputed when its text changed). 404 if
        absent."""
        with self._lock:
            col = self._collection(name)
            old = col.objects.get(uid)
            if old is None:
                raise NotFoundError(uid)
            write = self._prepare(0, col, uid, properties, vector, vectors, old, merge=True)
            self._finish_single(write)
            obj = StoredObject(
                uid,
                write.props,
                old.created,
                max(_now_ms(), old.created),
                write.vector,
                write.vectors or None,
            )
            col.objects[uid] = obj
            self._counters.incr(OBJECTS_UPDATED)
            self._learn_dims(write)
            return obj

    def upsert(
        self,
        name: str,
        uid: str,
        properties: Mapping[str, Any] | None,
        vector: bytes | None,
        vectors: dict[str, tuple[bytes, int]] | None,
    ) -> StoredObject:
        """A single batch-style write: create or replace (creation time kept on replace).
        Raises the errors a batch would list for the object."""
        with self._lock:
            col = self._collection_for_write(name)
            write = self._prepare(0, col, uid, properties, vector, vectors, col.objects.get(uid))
            self._vectorize([write], batch=True)
            if write.error is not None:
                raise VectorWriteError(write.error)
            self._check_dims(write)
            return self._commit_upsert(write, _now_ms())

    def upsert_many(
        self,
        items: Iterable[
            tuple[int, str, str, Mapping[str, Any], bytes | None, dict[str, Any] | None]
        ],
    ) -> dict[int, str]:
        """Write a batch under one lock: ``(index, collection, uuid, props, vector,
        vectors)`` each. Returns ``{index: error message}`` for the objects that failed;
        the others are written, as in a real batch.

        As on the server, every object is validated first, then each collection's
        objects are vectorised together (one call of :attr:`vectorizer` per named
        vector), then the objects are written one by one, each checked against the
        dimensions learned so far.
        """
        errors: dict[int, str] = {}
        writes: list[_Write] = []
        with self._lock:
            now = _now_ms()
            for index, name, uid, props, vector, vectors in items:
                try:
                    col = self._collection_for_write(name)
                    writes.append(
                        self._prepare(index, col, uid, props, vector, vectors, col.objects.get(uid))
                    )
                except (sch.ValidationError, ClassNotFoundError) as exc:
                    errors[index] = str(exc)
            self._vectorize(writes, batch=True)
            written = 0
            for write in writes:
                try:
                    if write.error is not None:
                        raise VectorWriteError(write.error)
                    self._check_dims(write)
                except VectorWriteError as exc:
                    errors[write.index] = str(exc)
                    continue
                self._commit_upsert(write, now)
                written += 1
            self._note_rate(written)
        return errors

    def delete(self, name: str, uid: str) -> bool:
        with self._lock:
            col = self._collections.get(sch.capitalize_class_name(name))
            if col is None or col.objects.pop(uid, None) is None:
                return False
            col.sorted_ids = None
            self._counters.incr(OBJECTS_DELETED)
            return True

    def delete_many(self, name: str, uids: Iterable[str]) -> int:
        with self._lock:
            col = self._collection(name)
            n = 0
            for uid in uids:
                if col.objects.pop(uid, None) is not None:
                    n += 1
            if n:
                col.sorted_ids = None
                self._counters.incr(OBJECTS_DELETED, n)
            return n

    # ------------------------------------------------------------------ reads
    def snapshot(self, name: str) -> tuple[sch.ClassDef, list[StoredObject]]:
        """The class and its objects in insertion order (docID order on a real shard)."""
        with self._lock:
            col = self._collection(name)
            return col.cls, list(col.objects.values())

    def lookup(self, name: str, uids: Iterable[str]) -> tuple[sch.ClassDef, list[StoredObject]]:
        """The class and those of ``uids`` that exist: one dict lookup each."""
        with self._lock:
            col = self._collection(name)
            found = (col.objects.get(u) for u in uids)
            return col.cls, [o for o in found if o is not None]

    def cursor_page(
        self, name: str, after: str, limit: int
    ) -> tuple[sch.ClassDef, list[StoredObject]]:
        """Objects in uuid byte order strictly after ``after`` ("" = from the start).

        This is how the real server serves an unfiltered listing and the ``after``
        cursor that ``collection.iterator()`` walks.
        """
        with self._lock:
            col = self._collection(name)
            if col.sorted_ids is None:
                # Canonical uuid strings sort like their 16 bytes.
                col.sorted_ids = sorted(col.objects)
            ids = col.sorted_ids
            start = bisect_right(ids, after) if after else 0
            page = ids[start : start + limit] if limit else ids[start:]
            return col.cls, [col.objects[i] for i in page]

    def batch_rate(self) -> int:
        """Objects written by batches during the last second (``/v1/nodes`` batchStats)."""
        with self._lock:
            self._note_rate(0)
            return sum(n for _, n in self._rate_window)

    # ------------------------------------------------------------------ internals
    def _collection(self, name: str) -> _Collection:
        col = self._collections.get(sch.capitalize_class_name(name))
        if col is None:
            raise ClassNotFoundError(sch.capitalize_class_name(name))
        return col

    def _collection_for_write(self, name: str) -> _Collection:
        cap = sch.capitalize_class_name(name)
        col = self._collections.get(cap)
        if col is None:
            if not self.auto_schema:
                raise ClassNotFoundError(cap)
            try:
                cls = sch.normalize_class(sch.auto_class(cap))
            except sch.SchemaError as exc:
                raise sch.ValidationError(f"invalid object: {exc}") from None
            col = self._collections[cls.name] = _Collection(cls)
        return col

    def _prepare(
        self,
        index: int,
        col: _Collection,
        uid: str,
        properties: Mapping[str, Any] | None,
        vector: bytes | None,
        vectors: dict[str, tuple[bytes, int]] | None,
        old: StoredObject | None,
        *,
        merge: bool = False,
    ) -> _Write:
        """Validate one object: vectors first, then properties, as the server does."""
        vector, named = _normalize_vectors(col.cls, vector, vectors)
        props = self._validate(col, properties or {})
        if merge and old is not None:
            props = {**old.properties, **props}
            if vector is None:
                vector = old.vector
        return _Write(index, col, uid, props, vector, named, old, merge=merge)

    def _finish_single(self, write: _Write) -> None:
        """Vectorise and check one REST write; raise what the server answers with 500."""
        self._vectorize([write], batch=False)
        if write.error is not None:
            raise VectorWriteError(write.error)
        self._check_dims(write)

    def _vectorize(self, writes: list[_Write], *, batch: bool) -> None:
        """Fill in the vectors a module computes; failures are left in ``write.error``."""
        jobs: dict[tuple[int, str], list[tuple[_Write, str]]] = {}
        for write in writes:
            cls = write.col.cls
            if not cls.vectorized:
                continue
            for vdef in cls.vectors.values():
                if vdef.module is None or write.error is not None:
                    continue
                if self.vectorizer is None:
                    # The module is absent. A batch fails every object of the collection
                    # (BatchUpdateVector); a single write only when it needs the module.
                    if batch:
                        write.error = f'no vectorizer found for class "{cls.name}"'
                    elif vdef.name not in write.vectors:
                        write.error = (
                            f"vectorize target vector {vdef.name}: no vectorizer found for "
                            f'class "{cls.name}"'
                        )
                    continue
                if vdef.name in write.vectors:
                    continue  # the write carries this vector: nothing to compute
                text = vec.object_text(cls, vdef, write.props)
                if text is None:
                    continue  # nothing to embed: no vector, as on the server
                old = write.old
                old_vector = None if old is None else old.vector_for(vdef.name)
                if old_vector is not None and vec.object_text(cls, vdef, old.properties) == text:
                    # The server's re-vectorisation check: same text, same vector.
                    write.vectors[vdef.name] = (old_vector, VECTOR_SINGLE)
                    continue
                jobs.setdefault((id(write.col), vdef.name), []).append((write, text))
        vectorizer = self.vectorizer
        for (_, name), pending in jobs.items():
            if vectorizer is None:
                break
            try:
                results = _run(vectorizer, [text for _, text in pending])
            except Exception as exc:  # the model failed: those objects fail with its message
                detail = f"vectorize target vector {name}: " + ("" if batch else "update vector: ")
                for write, _ in pending:
                    write.error = write.error or detail + str(exc)
                continue
            for (write, _), packed in zip(pending, results, strict=True):
                if packed is not None:
                    write.vectors[name] = (packed, VECTOR_SINGLE)
        for write in writes:
            if not write.merge:
                continue
            if write.old is not None and write.old.vectors:
                # PATCH keeps the self-provided vectors it does not replace.
                for name, value in write.old.vectors.items():
                    vdef = write.col.cls.vectors.get(name)
                    if name not in write.vectors and vdef is not None and vdef.module is None:
                        write.vectors[name] = value

    def _check_dims(self, write: _Write) -> None:
        """The HNSW index's check: every vector of a name has the same length."""
        if write.vector is None and not write.vectors:
            return
        col = write.col
        candidates = [(LEGACY, write.vector)] if write.vector is not None else []
        candidates += [(name, raw) for name, (raw, _) in write.vectors.items()]
        for name, raw in candidates:
            length = len(raw) // 4
            known = col.dims.get(name)
            if known is not None and known != length:
                where = (
                    f"Validate vector index for {write.uid}"
                    if name == LEGACY
                    # Sic: the server's message names the vector first, then the object.
                    else f"Validate vector index {name} for target vector {write.uid}"
                )
                raise VectorWriteError(
                    f"{where}: new node has a vector with length {length}. Existing nodes "
                    f"have vectors with length {known}: {_DIMENSIONS_MISMATCH}"
                )

    def _learn_dims(self, write: _Write) -> None:
        if write.vector is None and not write.vectors:
            return
        dims = write.col.dims
        if write.vector is not None:
            dims.setdefault(LEGACY, len(write.vector) // 4)
        for name, (raw, _) in write.vectors.items():
            dims.setdefault(name, len(raw) // 4)

    def _commit_upsert(self, write: _Write, now: int) -> StoredObject:
        col, uid = write.col, write.uid
        old = col.objects.get(uid)
        vectors = write.vectors or None
        if old is None:
            obj = StoredObject(uid, write.props, now, now, write.vector, vectors)
            self._store_new(col, obj)
        else:
            obj = StoredObject(
                uid, write.props, old.created, max(now, old.created), write.vector, vectors
            )
            col.objects[uid] = obj
            self._counters.incr(OBJECTS_UPDATED)
        self._learn_dims(write)
        return obj

    def _store_new(self, col: _Collection, obj: StoredObject) -> None:
        col.objects[obj.uuid] = obj
        col.sorted_ids = None
        self._counters.incr(OBJECTS_CREATED)

    def _validate(self, col: _Collection, properties: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and coerce properties against the schema (auto-schema adds new ones)."""
        cls = col.cls
        text_names = cls.text_names
        known = cls.properties
        out: dict[str, Any] = {}
        for key, value in properties.items():
            if type(value) is str and key in text_names:
                out[key] = value  # the common case, kept cheap: a text value for text
                continue
            if value is None:
                continue  # the server drops nil values
            prop = known.get(key)
            name = key
            if prop is None:
                name = sch.lowercase_property_name(key)
                prop = known.get(name)
            if prop is None:
                prop = self._auto_property(col, name, value)
                cls, known = col.cls, col.cls.properties
            try:
                out[name] = prop.validate(value)
            except sch.ValidationError as exc:
                raise sch.ValidationError(
                    f"invalid object: invalid {prop.word} property '{name}' on class "
                    f"'{cls.name}': {exc}"
                ) from None
        return out

    def _auto_property(self, col: _Collection, name: str, value: Any) -> sch.PropertyDef:
        if not self.auto_schema:
            raise sch.ValidationError(
                f"invalid object: no such prop with name '{name}' found in class "
                f"'{col.cls.name}' in the schema. Check your schema files for which "
                "properties in this class are available"
            )
        try:
            col.cls, _ = sch.with_property(col.cls, sch.auto_property(name, value))
        except (sch.SchemaError, sch.ValidationError) as exc:
            raise sch.ValidationError(f"invalid object: {exc}") from None
        return col.cls.properties[name]

    def _note_rate(self, written: int) -> None:
        now = time.monotonic()
        window = [(t, n) for t, n in self._rate_window if now - t < 1.0]
        if written:
            window.append((now, written))
        self._rate_window = window


def _normalize_vectors(
    cls: sch.ClassDef, vector: bytes | None, vectors: Mapping[str, tuple[bytes, int]] | None
) -> tuple[bytes | None, dict[str, tuple[bytes, int]]]:
    """The server's vector validation: where each given vector goes, or why it is refused.

    Empty vectors count as not given. A ``default`` named vector sent to a legacy
    collection is its class-level vector; an unnamed vector sent to a collection with
    exactly one named vector is that vector (with several: refused).
    """
    if not vectors and not vector:
        return None, {}  # the common case of a write without vectors
    named: dict[str, tuple[bytes, int]] = {}
    for name, (raw, kind) in (vectors or {}).items():
        if kind not in (0, VECTOR_SINGLE):
            raise VectorValidationError(
                f"vector {name!r}: multi-vectors are not supported by the Weaviate test server"
            )
        if len(raw) % 4:
            raise VectorValidationError(f"vector {name!r}: not float32 values")
        if raw:
            named[name] = (raw, VECTOR_SINGLE)
    if vector is not None and not vector:
        vector = None
    if not cls.named_vectors:
        if "default" in named:
            vector = named.pop("default")[0]
    elif vector is not None:
        if len(cls.vectors) == 1:
            return None, {next(iter(cls.vectors)): (vector, VECTOR_SINGLE)}
        raise VectorValidationError(
            f"collection {cls.name} configuration does not have single vector index"
        )
    for name in named:
        if not cls.named_vectors or name not in cls.vectors:
            raise VectorValidationError(
                f"collection {cls.name} does not have configuration for vector {name}"
            )
    return vector, named


def _run(vectorizer: Vectorizer, texts: list[str]) -> list[bytes | None]:
    """Call the vectoriser and pack its answers as float32 bytes (None stays None)."""
    results = list(vectorizer(list(texts)))
    if len(results) != len(texts):
        raise ValueError(f"the vectorizer returned {len(results)} vectors for {len(texts)} texts")
    packed: list[bytes | None] = []
    for values in results:
        if values is None:
            packed.append(None)
            continue
        array = np.asarray(values, dtype="<f4")
        if array.ndim != 1 or array.size == 0:
            raise ValueError(
                "the vectorizer must return one flat, non-empty list of floats per text"
            )
        packed.append(array.tobytes())
    return packed


def _deepcopy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy_json(v) for v in value]
    return value
