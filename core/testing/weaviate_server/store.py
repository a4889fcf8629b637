"""The in-memory object store behind both protocols.

One lock guards the whole store; every write replaces whole records (a stored
properties dict is never mutated), so a query can iterate a snapshot list taken under
the lock without holding it. Per collection the objects live in a dict keyed by the
canonical uuid string: fetch by id is one dict lookup.
"""

from __future__ import annotations

import struct
import threading
import time
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.testing.weaviate_server import schema as sch
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


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object as stored. ``vector`` is float32 little-endian bytes, as gRPC ships it."""

    uuid: str
    properties: dict[str, Any]
    created: int  # ms since the epoch, like creationTimeUnix
    updated: int
    vector: bytes | None = None
    vectors: dict[str, tuple[bytes, int]] | None = None  # name -> (bytes, Vectors.type)

    def vector_list(self) -> list[float] | None:
        if self.vector is None:
            return None
        return list(struct.unpack(f"<{len(self.vector) // 4}f", self.vector))


def pack_vector(values: Iterable[float]) -> bytes:
    values = list(values)
    return struct.pack(f"<{len(values)}f", *values)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Collection:
    __slots__ = ("cls", "objects", "sorted_ids")

    def __init__(self, cls: sch.ClassDef) -> None:
        self.cls = cls
        self.objects: dict[str, StoredObject] = {}
        # uuids in byte order for cursor pagination, rebuilt lazily after inserts/deletes
        self.sorted_ids: list[str] | None = None


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
    ) -> StoredObject:
        """Seed or overwrite one object directly (validated like a client write)."""
        uid = sch.canonical_uuid(str(uuid))
        if uid is None:
            raise ValueError(f"not a uuid: {uuid!r}")
        packed = pack_vector(vector) if vector is not None else None
        return self.upsert(name, uid, properties, packed, None)

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
            props = self._validate(col, properties or {})
            now = _now_ms()
            obj = StoredObject(uid, props, now, now, vector, vectors)
            self._store_new(col, obj)
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
            props = self._validate(col, properties or {})
            obj = StoredObject(
                uid, props, old.created, max(_now_ms(), old.created), vector, vectors
            )
            col.objects[uid] = obj
            self._counters.incr(OBJECTS_UPDATED)
            return obj

    def merge(
        self,
        name: str,
        uid: str,
        properties: Mapping[str, Any] | None,
        vector: bytes | None,
        vectors: dict[str, tuple[bytes, int]] | None,
    ) -> StoredObject:
        """``PATCH``: merge the given properties into the object. 404 if absent."""
        with self._lock:
            col = self._collection(name)
            old = col.objects.get(uid)
            if old is None:
                raise NotFoundError(uid)
            changes = self._validate(col, properties or {})
            props = {**old.properties, **changes}
            obj = StoredObject(
                uid,
                props,
                old.created,
                max(_now_ms(), old.created),
                vector if vector is not None else old.vector,
                vectors if vectors is not None else old.vectors,
            )
            col.objects[uid] = obj
            self._counters.incr(OBJECTS_UPDATED)
            return obj

    def upsert(
        self,
        name: str,
        uid: str,
        properties: Mapping[str, Any] | None,
        vector: bytes | None,
        vectors: dict[str, tuple[bytes, int]] | None,
    ) -> StoredObject:
        """A batch write: create or replace (creation time kept on replace)."""
        with self._lock:
            return self._upsert_locked(name, uid, properties, vector, vectors, _now_ms())

    def upsert_many(
        self,
        items: Iterable[
            tuple[int, str, str, Mapping[str, Any], bytes | None, dict[str, Any] | None]
        ],
    ) -> dict[int, str]:
        """Write a batch under one lock: ``(index, collection, uuid, props, vector,
        vectors)`` each. Returns ``{index: error message}`` for the objects that failed;
        the others are written, as in a real batch."""
        errors: dict[int, str] = {}
        written = 0
        with self._lock:
            now = _now_ms()
            for index, name, uid, props, vector, vectors in items:
                try:
                    self._upsert_locked(name, uid, props, vector, vectors, now)
                    written += 1
                except sch.ValidationError as exc:
                    errors[index] = str(exc)
                except ClassNotFoundError as exc:
                    errors[index] = str(exc)
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

    def _upsert_locked(
        self,
        name: str,
        uid: str,
        properties: Mapping[str, Any] | None,
        vector: bytes | None,
        vectors: dict[str, tuple[bytes, int]] | None,
        now: int,
    ) -> StoredObject:
        col = self._collection_for_write(name)
        props = self._validate(col, properties or {})
        old = col.objects.get(uid)
        if old is None:
            obj = StoredObject(uid, props, now, now, vector, vectors)
            self._store_new(col, obj)
        else:
            obj = StoredObject(uid, props, old.created, max(now, old.created), vector, vectors)
            col.objects[uid] = obj
            self._counters.incr(OBJECTS_UPDATED)
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


def _deepcopy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy_json(v) for v in value]
    return value
