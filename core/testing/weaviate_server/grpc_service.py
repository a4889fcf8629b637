"""The gRPC side: ``weaviate.v1.Weaviate`` and ``grpc.health.v1.Health/Check``.

The messages are the client's own generated classes. ``weaviate.proto.v1`` picks the
generated package that matches the installed protobuf (v6300 for protobuf 6.30+, ...),
exactly as the client does, so both ends always agree on the wire format.
"""

from __future__ import annotations

import struct
import time
import uuid as uuid_lib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf import struct_pb2
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)

from core.testing.weaviate_server import query as q
from core.testing.weaviate_server import schema as sch
from core.testing.weaviate_server.faults import BATCH_OBJECTS_SENT, Counters, Faults
from core.testing.weaviate_server.store import ClassNotFoundError, Store, StoredObject

if TYPE_CHECKING:
    from core.testing.weaviate_server.server import Auth

Value = properties_pb2.Value
_HEALTH_SERVING = health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
_VECTOR_SINGLE = base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32


class _Aborted(Exception):
    """Raised by the handlers and their helpers; ``_serve`` turns it into a gRPC status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _abort(code: grpc.StatusCode, details: str) -> NoReturn:
    raise _Aborted(code, details)


class WeaviateService(weaviate_pb2_grpc.WeaviateServicer):
    """Search, BatchObjects, BatchDelete and Aggregate over the shared :class:`Store`."""

    def __init__(
        self,
        store: Store,
        faults: Faults,
        counters: Counters,
        auth: Auth,
        *,
        query_defaults_limit: int,
        query_maximum_results: int,
    ) -> None:
        self._store = store
        self._faults = faults
        self._counters = counters
        self._auth = auth
        self._default_limit = query_defaults_limit
        self._max_results = query_maximum_results

    # -- plumbing shared by every RPC ----------------------------------------------------
    def _serve(
        self,
        rpc: str,
        context: grpc.ServicerContext,
        handler: Callable[[], Any],
        *,
        authenticate: bool = True,
    ) -> Any:
        key = f"grpc {rpc}"
        self._counters.incr(key)
        if not self._faults.delay("grpc"):
            # Cut short by a reset or shutdown: never serve it (see Faults.delay).
            context.abort(grpc.StatusCode.UNAVAILABLE, "request dropped: the server was reset")
        try:
            # Same order as the REST side: an injected failure first, then auth.
            failure = self._faults.take_failure("grpc", key)
            if failure is not None:
                _abort(failure.grpc_code, failure.message)
            if authenticate:
                problem = self._auth.check(_bearer(context))
                if problem is not None:
                    _abort(grpc.StatusCode.UNAUTHENTICATED, problem)
            return handler()
        except _Aborted as exc:
            context.abort(exc.code, exc.details)
        except ClassNotFoundError as exc:
            context.abort(grpc.StatusCode.UNKNOWN, str(exc))
        except q.UnsupportedError as exc:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
        except q.QueryError as exc:
            context.abort(grpc.StatusCode.UNKNOWN, str(exc))

    # -- health --------------------------------------------------------------------------
    def health_check(
        self, request: health_weaviate_pb2.WeaviateHealthCheckRequest, context: Any
    ) -> health_weaviate_pb2.WeaviateHealthCheckResponse:
        return self._serve(
            "Health/Check",
            context,
            lambda: health_weaviate_pb2.WeaviateHealthCheckResponse(status=_HEALTH_SERVING),
            authenticate=False,
        )

    # -- Search --------------------------------------------------------------------------
    def Search(
        self, request: search_get_pb2.SearchRequest, context: Any
    ) -> search_get_pb2.SearchReply:
        return self._serve("Search", context, lambda: self._search(request))

    def _search(self, req: search_get_pb2.SearchRequest) -> search_get_pb2.SearchReply:
        start = time.perf_counter()
        _refuse_tenant(req.tenant)
        for unsupported in (
            "hybrid_search",
            "near_vector",
            "near_object",
            "near_text",
            "near_image",
            "near_audio",
            "near_video",
            "near_depth",
            "near_thermal",
            "near_imu",
        ):
            if req.HasField(unsupported):
                _abort(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{unsupported}: vector search is not supported by the Weaviate test "
                    "server (it stores vectors but does not rank by them)",
                )
        for unsupported in ("group_by", "generative", "rerank", "boost"):
            if req.HasField(unsupported):
                _abort(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{unsupported} is not supported by the Weaviate test server",
                )
        if req.autocut:
            _abort(grpc.StatusCode.UNIMPLEMENTED, "autocut is not supported here")
        if req.properties.ref_properties or req.properties.object_properties:
            _abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "returning references or object properties is not supported here",
            )

        limit = req.limit or self._default_limit
        offset = req.offset
        if offset + limit > self._max_results:
            _abort(
                grpc.StatusCode.UNKNOWN,
                f"query maximum results exceeded: offset ({offset}) + limit ({limit}) "
                f"> QUERY_MAXIMUM_RESULTS ({self._max_results})",
            )
        has_filter = req.HasField("filters")
        scores: dict[str, float] | None = None
        if req.after and (offset or req.sort_by or has_filter or req.HasField("bm25_search")):
            _abort(
                grpc.StatusCode.UNKNOWN,
                "cursor api: invalid 'after' parameter: can be used only without 'offset', "
                "'sort', 'where' and search parameters",
            )

        if req.HasField("bm25_search"):
            cls, objects = self._filtered(req.collection, req.filters if has_filter else None)
            scored = q.bm25_scores(req.bm25_search, cls, objects)
            scores = {o.uuid: s for s, o in scored}
            objects = [o for _, o in scored]
        elif has_filter:
            cls, objects = self._filtered(req.collection, req.filters)
        elif not req.sort_by:
            # No filter, no sort: the real server lists in uuid order, which is also what
            # the ``after`` cursor of collection.iterator() walks.
            after = sch.canonical_uuid(req.after) or req.after
            cls, objects = self._store.cursor_page(req.collection, after, offset + limit)
        else:
            cls, objects = self._store.snapshot(req.collection)

        if req.sort_by:
            objects = q.sort_objects(objects, req.sort_by, cls)
        objects = objects[offset : offset + limit]

        select = _selected_properties(req, cls)
        meta = req.metadata if req.HasField("metadata") else None
        reply = search_get_pb2.SearchReply()
        # Filled in place: building each result apart and handing the list over
        # copies every message again (a cursor page of 10,000 would take 4x longer).
        add = reply.results.add
        for o in objects:
            _fill_result(add(), o, cls, select, meta, scores)
        reply.took = time.perf_counter() - start
        return reply

    def _filtered(
        self, collection: str, flt: base_pb2.Filters | None
    ) -> tuple[sch.ClassDef, list[StoredObject]]:
        """Objects matching ``flt`` (all if None), in insertion order unless pinned by id."""
        if flt is None:
            return self._store.snapshot(collection)
        ids = q.id_candidates(flt)
        if ids is not None:
            cls, candidates = self._store.lookup(collection, ids)
        else:
            cls, candidates = self._store.snapshot(collection)
        pred = q.compile_filter(flt, cls)
        return cls, [o for o in candidates if pred(o)]

    # -- BatchObjects ----------------------------------------------------------------------
    def BatchObjects(
        self, request: batch_pb2.BatchObjectsRequest, context: Any
    ) -> batch_pb2.BatchObjectsReply:
        return self._serve("BatchObjects", context, lambda: self._batch_objects(request))

    def _batch_objects(self, req: batch_pb2.BatchObjectsRequest) -> batch_pb2.BatchObjectsReply:
        start = time.perf_counter()
        self._counters.incr(BATCH_OBJECTS_SENT, len(req.objects))
        errors: dict[int, str] = {}
        items = []
        check_faults = self._faults.has_object_failures
        for index, obj in enumerate(req.objects):
            try:
                if obj.tenant:
                    raise sch.ValidationError(_tenant_message(obj.tenant))
                uid = sch.canonical_uuid(obj.uuid) if obj.uuid else str(uuid_lib.uuid4())
                if uid is None:
                    raise sch.ValidationError(f"invalid UUID length: {len(obj.uuid)}")
                props = _batch_properties(obj.properties) if obj.HasField("properties") else {}
                collection = sch.capitalize_class_name(obj.collection)
                if check_faults:
                    injected = self._faults.object_failure(collection, uid, props)
                    if injected is not None:
                        raise sch.ValidationError(injected)
                vector = obj.vector_bytes or (
                    struct.pack(f"<{len(obj.vector)}f", *obj.vector) if obj.vector else None
                )
                vectors = {v.name: (v.vector_bytes, v.type) for v in obj.vectors} or None
            except sch.ValidationError as exc:
                errors[index] = str(exc)
                continue
            items.append((index, collection, uid, props, vector, vectors))
        errors.update(self._store.upsert_many(items))
        return batch_pb2.BatchObjectsReply(
            took=time.perf_counter() - start,
            errors=[
                batch_pb2.BatchObjectsReply.BatchError(index=i, error=e)
                for i, e in sorted(errors.items())
            ],
        )

    # -- BatchDelete -----------------------------------------------------------------------
    def BatchDelete(
        self, request: batch_delete_pb2.BatchDeleteRequest, context: Any
    ) -> batch_delete_pb2.BatchDeleteReply:
        return self._serve("BatchDelete", context, lambda: self._batch_delete(request))

    def _batch_delete(
        self, req: batch_delete_pb2.BatchDeleteRequest
    ) -> batch_delete_pb2.BatchDeleteReply:
        start = time.perf_counter()
        _refuse_tenant(req.tenant)
        if not req.HasField("filters"):
            _abort(grpc.StatusCode.UNKNOWN, "batch delete: filters are required")
        _, objects = self._filtered(req.collection, req.filters)
        # Like the real server, one call deletes at most QUERY_MAXIMUM_RESULTS objects.
        matched = [o.uuid for o in objects][: self._max_results]
        if not req.dry_run:
            self._store.delete_many(req.collection, matched)
        reply = batch_delete_pb2.BatchDeleteReply(
            took=time.perf_counter() - start,
            matches=len(matched),
            successful=len(matched),
            failed=0,
        )
        if req.verbose:
            reply.objects.extend(
                batch_delete_pb2.BatchDeleteObject(uuid=uuid_lib.UUID(u).bytes, successful=True)
                for u in matched
            )
        return reply

    # -- Aggregate -------------------------------------------------------------------------
    def Aggregate(
        self, request: aggregate_pb2.AggregateRequest, context: Any
    ) -> aggregate_pb2.AggregateReply:
        return self._serve("Aggregate", context, lambda: self._aggregate(request))

    def _aggregate(self, req: aggregate_pb2.AggregateRequest) -> aggregate_pb2.AggregateReply:
        start = time.perf_counter()
        _refuse_tenant(req.tenant)
        for unsupported in ("group_by", "hybrid", "near_vector", "near_object", "near_text"):
            if req.HasField(unsupported):
                _abort(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"aggregate with {unsupported} is not supported by the Weaviate test server",
                )
        if req.aggregations:
            _abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "property metrics are not supported by the Weaviate test server; it "
                "aggregates the total count only",
            )
        if req.HasField("filters"):
            count = len(self._filtered(req.collection, req.filters)[1])
        else:
            self._store.snapshot(req.collection)  # raises for an unknown collection
            count = self._store.count(req.collection)
        single = aggregate_pb2.AggregateReply.Single()
        if req.objects_count:
            single.objects_count = count
        return aggregate_pb2.AggregateReply(took=time.perf_counter() - start, single_result=single)

    # -- the rest of the service -------------------------------------------------------------
    def TenantsGet(
        self, request: tenants_pb2.TenantsGetRequest, context: Any
    ) -> tenants_pb2.TenantsGetReply:
        def refuse() -> NoReturn:
            _abort(
                grpc.StatusCode.UNKNOWN,
                f"class {request.collection} has multi-tenancy disabled",
            )

        return self._serve("TenantsGet", context, refuse)

    def BatchReferences(
        self, request: batch_pb2.BatchReferencesRequest, context: Any
    ) -> batch_pb2.BatchReferencesReply:
        def refuse() -> NoReturn:
            _abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "cross-references are not supported by the Weaviate test server",
            )

        return self._serve("BatchReferences", context, refuse)

    def BatchStream(
        self, request_iterator: Iterator[batch_pb2.BatchStreamRequest], context: Any
    ) -> Iterator[batch_pb2.BatchStreamReply]:
        self._counters.incr("grpc BatchStream")
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "server-side batching (batch.stream()) is not supported by the Weaviate test "
            "server; use batch.fixed_size() or batch.dynamic()",
        )
        yield from ()  # pragma: no cover - abort() raises


# -- helpers ---------------------------------------------------------------------------------


def _bearer(context: Any) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value
    return None


def _tenant_message(tenant: str) -> str:
    return (
        "has multi-tenancy disabled, but request was with tenant "
        f"{tenant!r} (the Weaviate test server has no multi-tenancy)"
    )


def _refuse_tenant(tenant: str) -> None:
    if tenant:
        _abort(grpc.StatusCode.UNKNOWN, _tenant_message(tenant))


_SCALAR_KINDS = frozenset({"string_value", "number_value", "bool_value"})


def _struct_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind in _SCALAR_KINDS:
        return getattr(value, kind)
    if kind == "struct_value":
        nested = value.struct_value.fields
        return {k: _struct_value(nested[k]) for k in nested}
    if kind == "list_value":
        return [_struct_value(v) for v in value.list_value.values]
    return None  # null_value, or unset


def _batch_properties(p: batch_pb2.BatchObject.Properties) -> dict[str, Any]:
    """The properties of one batch object as plain Python values.

    Scalars travel in a protobuf Struct, so every number is a double here; the schema
    turns ``42.0`` back into ``42`` for int properties (see ``schema._v_int``).
    """
    # Reading the map through upb directly (keys, then lookups: its items() view is
    # pure Python) is twice as fast as Struct.items(), which converts in Python too.
    fields = p.non_ref_properties.fields
    props: dict[str, Any] = {}
    for key in fields:
        value = fields[key]
        kind = value.WhichOneof("kind")
        props[key] = getattr(value, kind) if kind in _SCALAR_KINDS else _struct_value(value)
    for arr in p.text_array_properties:
        props[arr.prop_name] = list(arr.values)
    for arr in p.int_array_properties:
        props[arr.prop_name] = list(arr.values)
    for arr in p.number_array_properties:
        if arr.values_bytes:
            n = len(arr.values_bytes) // 8
            props[arr.prop_name] = list(struct.unpack(f"<{n}d", arr.values_bytes))
        else:
            props[arr.prop_name] = list(arr.values)
    for arr in p.boolean_array_properties:
        props[arr.prop_name] = list(arr.values)
    for name in p.empty_list_props:
        props[name] = []
    if p.object_properties or p.object_array_properties:
        raise sch.ValidationError(
            "invalid object: object properties are not supported by the Weaviate test server"
        )
    if p.single_target_ref_props or p.multi_target_ref_props:
        raise sch.ValidationError(
            "invalid object: cross-references are not supported by the Weaviate test server"
        )
    return props


def _selected_properties(req: search_get_pb2.SearchRequest, cls: sch.ClassDef) -> list[str]:
    if not req.HasField("properties") or req.properties.return_all_nonref_properties:
        # "All properties" means all but blobs, which must be asked for by name.
        return [n for n, p in cls.properties.items() if p.data_type != "blob"]
    return list(req.properties.non_ref_properties)


def _encode_into(target: Value, value: Any, data_type: str) -> None:
    """Write one stored value into a search reply's ``Value`` (kind per data type)."""
    if data_type == "text":
        target.text_value = value
    elif data_type == "int":
        target.int_value = value
    elif data_type == "number":
        target.number_value = value
    elif data_type == "boolean":
        target.bool_value = value
    elif data_type == "date":
        target.date_value = value
    elif data_type == "uuid":
        target.uuid_value = value
    elif data_type == "blob":
        target.blob_value = value
    else:
        lv = target.list_value
        if data_type == "int[]":
            lv.int_values.values = struct.pack(f"<{len(value)}q", *value)
        elif data_type == "number[]":
            lv.number_values.values = struct.pack(f"<{len(value)}d", *value)
        else:
            repeated = {
                "text[]": lv.text_values,
                "boolean[]": lv.bool_values,
                "date[]": lv.date_values,
                "uuid[]": lv.uuid_values,
            }[data_type]
            repeated.SetInParent()  # an empty list still names its kind
            repeated.values.extend(value)


def _fill_result(
    result: search_get_pb2.SearchResult,
    obj: StoredObject,
    cls: sch.ClassDef,
    select: list[str],
    meta: search_get_pb2.MetadataRequest | None,
    scores: dict[str, float] | None,
) -> None:
    """Write one object into a (new, empty) result of a search reply."""
    props = result.properties
    props.target_collection = cls.name
    if select:
        stored = obj.properties
        cls_props = cls.properties
        fields = props.non_ref_props.fields
        for name in select:
            value = stored.get(name)
            prop = cls_props.get(name)
            if value is None or prop is None:
                continue  # absent properties are left out, as on the real server
            _encode_into(fields[name], value, prop.data_type)

    md = result.metadata
    md.id = obj.uuid
    md.id_as_bytes = bytes.fromhex(obj.uuid.replace("-", ""))  # stored uuids are canonical
    if meta is None:
        return
    if meta.last_update_time_unix:
        md.last_update_time_unix = obj.updated
        md.last_update_time_unix_present = True
    if meta.creation_time_unix:
        md.creation_time_unix = obj.created
        md.creation_time_unix_present = True
    if meta.is_consistent:
        md.is_consistent = True
        md.is_consistent_present = True
    if scores is not None:
        if meta.score:
            md.score = scores.get(obj.uuid, 0.0)
            md.score_present = True
        if meta.explain_score:
            md.explain_score = f"term-frequency score {scores.get(obj.uuid, 0.0)}"
            md.explain_score_present = True
    if meta.vector and obj.vector is not None:
        md.vector_bytes = obj.vector
    if obj.vectors and (meta.vector or meta.vectors):
        wanted = set(meta.vectors) if meta.vectors else set(obj.vectors)
        for vname, (vbytes, vtype) in obj.vectors.items():
            if vname in wanted:
                md.vectors.append(
                    base_pb2.Vectors(name=vname, vector_bytes=vbytes, type=vtype or _VECTOR_SINGLE)
                )


def add_health_service(server: grpc.Server, service: WeaviateService) -> None:
    """``/grpc.health.v1.Health/Check`` with the client's own health message classes."""
    handler = grpc.unary_unary_rpc_method_handler(
        service.health_check,
        request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
        response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": handler}),)
    )
