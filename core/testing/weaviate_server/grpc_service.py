"""The gRPC side: ``weaviate.v1.Weaviate`` and ``grpc.health.v1.Health/Check``.

The messages are the client's own generated classes. ``weaviate.proto.v1`` picks the
generated package that matches the installed protobuf (v6300 for protobuf 6.30+, ...),
exactly as the client does, so both ends always agree on the wire format.

Search covers the vector searches the way the server's ``usecases/traverser`` runs them:

- ``near_vector`` / ``near_object`` / ``near_text``: the filter first (pre-filtering),
  then every stored vector of the target vector ranked by distance (exact, see
  ``vectors.py``), ``distance`` / ``certainty`` thresholds, then ``offset`` and ``limit``.
  ``near_object`` searches with the object's own vector, so the object itself comes
  first at distance 0, as on the server; ``near_text`` embeds the query with the
  collection's vectoriser (``Store.vectorizer``), several concepts averaged.
- ``hybrid``: a vector leg and a keyword leg (the server's bm25 here, see ``query.py``),
  each on the filtered objects and each cut at ``max(100, limit)``
  (``QUERY_HYBRID_MAXIMUM_RESULTS``), fused with rankedFusion or relativeScoreFusion,
  then paged. ``alpha`` 0 runs the keyword leg only, 1 the vector leg only. Without a
  vector the query text is embedded by the collection's vectoriser.
- metadata: ``distance`` (and ``certainty`` for cosine) for the near searches, ``score``
  and ``explain_score`` for hybrid and bm25; like the server, a requested ``score`` is
  0 and ``explain_score`` empty where the search has none.
"""

from __future__ import annotations

import struct
import time
import uuid as uuid_lib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import numpy as np
from google.protobuf import struct_pb2
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    base_search_pb2,
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
from core.testing.weaviate_server import vectors as vec
from core.testing.weaviate_server.faults import BATCH_OBJECTS_SENT, Counters, Faults
from core.testing.weaviate_server.store import ClassNotFoundError, Store, StoredObject

if TYPE_CHECKING:
    from core.testing.weaviate_server.server import Auth

Value = properties_pb2.Value
_HEALTH_SERVING = health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
_VECTOR_SINGLE = base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32
_VECTOR_MULTI = base_pb2.Vectors.VECTOR_TYPE_MULTI_FP32
_NEAR_SEARCHES = ("near_vector", "near_object", "near_text")
_MEDIA_SEARCHES = (
    "near_image",
    "near_audio",
    "near_video",
    "near_depth",
    "near_thermal",
    "near_imu",
)
# QUERY_HYBRID_MAXIMUM_RESULTS: how deep each hybrid leg searches (at least ``limit``).
HYBRID_MAXIMUM_RESULTS = 100
# The server's default alpha when the request carries none (``use_alpha_param`` without
# ``alpha_param``; the Python client always sends one, 0.7 by default).
DEFAULT_ALPHA = 0.75
# The chain of wrapping the server's explorer adds to errors of a vector search.
_EXPLORER = "explorer: get class: concurrentTargetVectorSearch): explorer: get class: "


@dataclass(slots=True)
class _Ranking:
    """What a search knows about each result besides the object: score, explanation,
    distance (with ``certainty`` when the metric is cosine)."""

    scores: dict[str, float] | None = None
    explains: dict[str, str] | None = None
    distances: dict[str, float] | None = None
    certainty: bool = False


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
        for unsupported in _MEDIA_SEARCHES:
            if req.HasField(unsupported):
                _abort(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{unsupported}: searching by images, audio and other media is not "
                    "supported by the Weaviate test server (it has no multi-modal module)",
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
        searches = [k for k in (*_NEAR_SEARCHES, "hybrid_search", "bm25_search") if req.HasField(k)]
        if len(searches) > 1:
            _abort(
                grpc.StatusCode.UNKNOWN,
                f"conflict: {' and '.join(searches)} arguments present, choose one",
            )
        search = searches[0] if searches else None
        if req.after and (offset or req.sort_by or has_filter or search):
            _abort(
                grpc.StatusCode.UNKNOWN,
                "cursor api: invalid 'after' parameter: can be used only without 'offset', "
                "'sort', 'where' and search parameters",
            )
        meta = req.metadata if req.HasField("metadata") else None
        ranking = _Ranking()

        if search == "hybrid_search":
            if req.sort_by:
                _abort(
                    grpc.StatusCode.UNIMPLEMENTED,
                    "sorting a hybrid search is not supported by the Weaviate test server",
                )
            cls, objects, ranking = self._hybrid(req, meta, limit, offset)
        elif search in _NEAR_SEARCHES:
            cls, objects, ranking = self._near(req, search, meta, limit, offset)
        else:
            if search == "bm25_search":
                cls, objects = self._filtered(req.collection, req.filters if has_filter else None)
                scored = q.bm25_scores(req.bm25_search, cls, objects)
                ranking.scores = {o.uuid: s for s, o in scored}
                ranking.explains = {
                    o.uuid: f"term-frequency score {vec.go_float(s)}" for s, o in scored
                }
                objects = [o for _, o in scored]
            elif has_filter:
                cls, objects = self._filtered(req.collection, req.filters)
            elif not req.sort_by:
                # No filter, no sort: the real server lists in uuid order, which is also
                # what the ``after`` cursor of collection.iterator() walks.
                after = sch.canonical_uuid(req.after) or req.after
                cls, objects = self._store.cursor_page(req.collection, after, offset + limit)
            else:
                cls, objects = self._store.snapshot(req.collection)
            if meta is not None and meta.certainty:
                _check_certainty(cls, None)
            if req.sort_by:
                objects = q.sort_objects(objects, req.sort_by, cls)
            objects = objects[offset : offset + limit]

        select = _selected_properties(req, cls)
        reply = search_get_pb2.SearchReply()
        # Filled in place: building each result apart and handing the list over
        # copies every message again (a cursor page of 10,000 would take 4x longer).
        add = reply.results.add
        for o in objects:
            _fill_result(add(), o, cls, select, meta, ranking)
        reply.took = time.perf_counter() - start
        return reply

    # -- near_vector, near_object, near_text -------------------------------------------------
    def _near(
        self,
        req: search_get_pb2.SearchRequest,
        kind: str,
        meta: search_get_pb2.MetadataRequest | None,
        limit: int,
        offset: int,
    ) -> tuple[sch.ClassDef, list[StoredObject], _Ranking]:
        part = getattr(req, kind)
        cls, objects = self._filtered(
            req.collection, req.filters if req.HasField("filters") else None
        )
        target = _target_vector(part, cls)
        vdef = cls.vectors[target]
        certainty = part.certainty if part.HasField("certainty") else None
        distance = part.distance if part.HasField("distance") else None
        if certainty is not None and distance is not None:
            raise q.QueryError(f"{kind}: cannot provide distance and certainty")
        if certainty or (meta is not None and meta.certainty):
            _check_certainty(cls, target)

        if kind == "near_vector":
            query = _near_vector_query(part, "near_vector")
        elif kind == "near_object":
            query = self._object_vector(req.collection, part.id, target)
        else:
            if part.HasField("move_to") or part.HasField("move_away"):
                raise q.UnsupportedError(
                    "near_text with move_to / move_away is not supported by the Weaviate "
                    "test server"
                )
            if vdef.module is None or self._store.vectorizer is None:
                raise q.QueryError(
                    f"{_EXPLORER}vectorize search vector: {_no_near_text_module(cls)}"
                )
            query = self._embed(list(part.query), f"{_EXPLORER}vectorize search vector: ")

        ranked = self._rank(req.collection, vdef, query, objects)
        # The server's thresholds (searchResultsToGetResponseWithType), in float32.
        if certainty:
            wanted = np.float32(certainty)
            ranked = [
                (d, o)
                for d, o in ranked
                if not (np.float32(1) - np.float32(d) / np.float32(2) < wanted)
            ]
        elif distance is not None:
            ranked = [(d, o) for d, o in ranked if _within(d, distance)]
        if req.sort_by:
            # As the shard does: the nearest offset + limit, reordered by the sort.
            nearest = ranked[: offset + limit]
            order = q.sort_objects([o for _, o in nearest], req.sort_by, cls)
            dist_of = {o.uuid: d for d, o in nearest}
            ranked = [(dist_of[o.uuid], o) for o in order]
        page = ranked[offset : offset + limit]
        ranking = _Ranking(
            distances={o.uuid: d for d, o in page}, certainty=vdef.distance == "cosine"
        )
        return cls, [o for _, o in page], ranking

    def _object_vector(self, collection: str, raw_id: str, target: str) -> np.ndarray:
        """The stored vector ``near_object`` searches with."""
        prefix = f"{_EXPLORER}vectorize search vector: nearObject params: "
        uid = sch.canonical_uuid(raw_id)
        found = self._store.lookup(collection, [uid])[1] if uid else []
        if not found:
            raise q.QueryError(prefix + "vector not found")
        raw = found[0].vector_for(target)
        if raw is None:
            raise q.QueryError(
                prefix
                + (
                    f"vector not found for target: {target}"
                    if target
                    else f"nearObject search-object with id {uid} has no vector"
                )
            )
        return vec.decode(raw)

    def _embed(self, texts: list[str], prefix: str) -> np.ndarray:
        """Query texts through the vectoriser module, averaged like the module does."""
        try:
            embedded = self._store.vectorize(texts)
        except Exception as exc:
            raise q.QueryError(
                f"{prefix}vectorize params: remote client vectorize: {exc}"
            ) from None
        if any(v is None for v in embedded):
            raise q.QueryError(f"{prefix}vectorize params: the vectorizer returned no vector")
        return vec.mean_vector([v for v in embedded if v is not None])

    def _rank(
        self,
        collection: str,
        vdef: sch.VectorDef,
        query: np.ndarray,
        objects: list[StoredObject],
    ) -> list[tuple[float, StoredObject]]:
        """Every object holding vector ``vdef.name``, nearest first (ties: insertion
        order). The query must have the dimension the collection learned."""
        known = self._store.dimensions(collection).get(vdef.name)
        if known is not None and known != len(query):
            raise q.QueryError(
                f"{_EXPLORER}vector search: knn search: distance between entrypoint and "
                f"query node: {len(query)} vs {known}: vector lengths don't match"
            )
        if vdef.distance not in sch.DISTANCES:
            raise q.UnsupportedError(
                f"distance metric {vdef.distance!r} is not supported by the Weaviate test server"
            )
        rows: list[StoredObject] = []
        raws: list[bytes] = []
        for o in objects:
            raw = o.vector_for(vdef.name)
            if raw is not None and len(raw) == 4 * len(query):
                rows.append(o)
                raws.append(raw)
        if not rows:
            return []
        matrix = np.frombuffer(b"".join(raws), dtype="<f4").reshape(len(rows), len(query))
        dists = vec.distances(vdef.distance, query, matrix)
        order = np.argsort(dists, kind="stable")
        return [(float(dists[i]), rows[i]) for i in order]

    # -- hybrid ----------------------------------------------------------------------------
    def _hybrid(
        self,
        req: search_get_pb2.SearchRequest,
        meta: search_get_pb2.MetadataRequest | None,
        limit: int,
        offset: int,
    ) -> tuple[sch.ClassDef, list[StoredObject], _Ranking]:
        """``Explorer.Hybrid`` of the server: both legs on the filtered objects, fused."""
        hs = req.hybrid_search
        if hs.HasField("near_text") and hs.HasField("near_vector"):
            raise q.QueryError("hybrid search cannot have both nearText and nearVector parameters")
        cls, objects = self._filtered(
            req.collection, req.filters if req.HasField("filters") else None
        )
        target = _target_vector(hs, cls)
        vdef = cls.vectors[target]
        if meta is not None and meta.certainty:
            _check_certainty(cls, target)
        if hs.use_alpha_param:
            alpha = hs.alpha_param if hs.HasField("alpha_param") else DEFAULT_ALPHA
        else:
            alpha = hs.alpha  # a float32 on the wire, widened as the server does
        depth = max(HYBRID_MAXIMUM_RESULTS, limit)

        legs: list[list[vec.Hit]] = []
        weights: list[float] = []
        names: list[str] = []
        below_cutoff: set[str] | None = None
        if alpha > 0:
            name, query, max_distance = self._hybrid_vector(cls, vdef, hs)
            ranked = self._rank(req.collection, vdef, query, objects)[:depth]
            if max_distance is not None:
                ranked = [(d, o) for d, o in ranked if _within(d, max_distance)]
            if hs.HasField("vector_distance"):
                # Sorted by distance: keep everything up to the first one beyond it.
                kept = []
                for d, o in ranked:
                    if float(np.float32(d)) > hs.vector_distance:
                        break
                    kept.append((d, o))
                ranked = kept
                below_cutoff = {o.uuid for _, o in ranked}
            legs.append([vec.Hit(o.uuid, float(np.float32(1) - np.float32(d))) for d, o in ranked])
            weights.append(alpha)
            names.append(name)
        if 1 - alpha > 0:
            bm25 = base_search_pb2.BM25(query=hs.query, properties=list(hs.properties))
            if hs.HasField("bm25_search_operator"):
                bm25.search_operator.CopyFrom(hs.bm25_search_operator)
            scored = q.bm25_scores(bm25, cls, objects)[:depth]
            if below_cutoff is not None:
                scored = [(s, o) for s, o in scored if o.uuid in below_cutoff]
            legs.append([vec.Hit(o.uuid, s) for s, o in scored])
            weights.append(1 - alpha)
            names.append("keyword,bm25")

        if hs.fusion_type == base_search_pb2.Hybrid.FUSION_TYPE_RANKED:
            fused = vec.fusion_ranked(weights, legs, names)
        else:  # relativeScoreFusion, the default since v1.24
            fused = vec.fusion_relative_score(weights, legs, names)
        page = fused[offset : offset + limit]
        by_id = {o.uuid: o for o in objects}
        ranking = _Ranking(
            scores={f.uuid: f.score for f in page}, explains={f.uuid: f.explain for f in page}
        )
        return cls, [by_id[f.uuid] for f in page], ranking

    def _hybrid_vector(
        self, cls: sch.ClassDef, vdef: sch.VectorDef, hs: base_search_pb2.Hybrid
    ) -> tuple[str, np.ndarray, float | None]:
        """The vector leg's name, query vector, and distance limit (near_vector's)."""
        if len(hs.vectors) > 1:
            raise q.QueryError(f"hybrid: only 1 vector supported, found {len(hs.vectors)} vectors")
        if hs.vectors:
            return "vector,hybridVector", _vector_message(hs.vectors[0], "hybrid"), None
        if hs.vector_bytes:
            return "vector,hybridVector", vec.decode(hs.vector_bytes), None
        if hs.vector:
            return "vector,hybridVector", np.asarray(hs.vector, dtype=np.float32), None
        if hs.HasField("near_vector"):
            nv = hs.near_vector
            # The server applies near_vector's distance (not its certainty) to this leg.
            limit = nv.distance if nv.HasField("distance") else None
            return "vector,nearVector", _near_vector_query(nv, "near_vector"), limit
        if hs.HasField("near_text"):
            # The server's parser does not carry near_text's distance/certainty into
            # hybrid, so neither does this server.
            prefix = "explorer: get class: vectorize search vector: "
            if vdef.module is None or self._store.vectorizer is None:
                raise q.QueryError(prefix + _no_near_text_module(cls))
            return "vector,nearText", self._embed(list(hs.near_text.query), prefix), None
        if vdef.module is None or self._store.vectorizer is None:
            raise q.QueryError(
                f"VectorFromInput was called without vectorizer on class {cls.name} for "
                f"input {hs.query}"
            )
        return "vector,hybridVector", self._embed([hs.query], ""), None

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


def _target_vector(part: Any, cls: sch.ClassDef) -> str:
    """The vector a search runs on ("" = a legacy collection's class-level vector), as
    the server's ``extractTargetVectors`` resolves it."""
    targets = (
        list(part.targets.target_vectors) if part.HasField("targets") else list(part.target_vectors)
    )
    if len(targets) > 1:
        raise q.UnsupportedError(
            "searching several target vectors at once (multi-target vector search) is not "
            "supported by the Weaviate test server"
        )
    if not targets:
        if not cls.named_vectors:
            return ""
        if len(cls.vectors) > 1:
            raise q.QueryError(
                f"extract target vectors: class {cls.name} has multiple vectors, but no "
                "target vectors were provided"
            )
        return next(iter(cls.vectors))
    target = targets[0]
    if not cls.named_vectors or target not in cls.vectors:
        available = " ".join(sorted(cls.vectors)) if cls.named_vectors else ""
        raise q.QueryError(
            f"extract target vectors: class {cls.name} does not have named vector {target} "
            f"configured. Available named vectors [{available}]"
        )
    return target


def _within(distance: float, limit: float) -> bool:
    """The server's distance threshold: the float32 distance at most ``limit``, or within
    1e-6 of it."""
    d = float(np.float32(distance))
    return d <= limit or abs(d - limit) <= 1e-6


def _check_certainty(cls: sch.ClassDef, target: str | None) -> None:
    """Certainty (asked for as a threshold or as metadata) needs a cosine index."""
    if target is None:
        if len(cls.vectors) > 1:
            raise q.QueryError(
                f"multiple vector configs found for class '{cls.name}', but no target vector "
                "specified"
            )
        target = next(iter(cls.vectors))
    distance = cls.vectors[target].distance
    if distance != "cosine":
        raise q.QueryError(
            "can't compute and return certainty when vector index is configured with "
            f"{distance} distance"
        )


def _vector_message(v: base_pb2.Vectors, what: str) -> np.ndarray:
    if v.type == _VECTOR_MULTI:
        raise q.UnsupportedError(
            f"{what}: multi-vector search is not supported by the Weaviate test server"
        )
    return vec.decode(v.vector_bytes)


def _near_vector_query(nv: base_search_pb2.NearVector, what: str) -> np.ndarray:
    """The query vector of a ``NearVector`` message, in whichever field the client put it."""
    if len(nv.vectors) > 1:
        raise q.QueryError(f"{what}: only 1 vector supported, found {len(nv.vectors)} vectors")
    if nv.vectors:
        return _vector_message(nv.vectors[0], what)
    if nv.vector_bytes:
        return vec.decode(nv.vector_bytes)
    if nv.vector:
        return np.asarray(nv.vector, dtype=np.float32)
    if len(nv.vector_for_targets) == 1:
        target = nv.vector_for_targets[0]
        if target.vectors:
            return _vector_message(target.vectors[0], what)
        return vec.decode(target.vector_bytes)
    if len(nv.vector_per_target) == 1:
        return vec.decode(next(iter(nv.vector_per_target.values())))
    if nv.vector_for_targets or nv.vector_per_target:
        raise q.UnsupportedError(
            "searching several target vectors at once (multi-target vector search) is not "
            "supported by the Weaviate test server"
        )
    raise q.QueryError(f"{what}: no vector given")


def _no_near_text_module(cls: sch.ClassDef) -> str:
    return (
        f"could not vectorize input for collection {cls.name} with search-type nearText. "
        "Make sure a vectorizer module is configured for this collection"
    )


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
    ranking: _Ranking,
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
    # As on the server, a requested score is always there: 0 where the search has none
    # (the explanation is then empty).
    if meta.score:
        md.score = ranking.scores.get(obj.uuid, 0.0) if ranking.scores else 0.0
        md.score_present = True
    if meta.explain_score:
        md.explain_score = ranking.explains.get(obj.uuid, "") if ranking.explains else ""
        md.explain_score_present = True
    if ranking.distances is not None:
        distance = ranking.distances[obj.uuid]
        if meta.distance:
            md.distance = distance
            md.distance_present = True
        if meta.certainty and ranking.certainty:
            md.certainty = vec.certainty(float(np.float32(distance)))
            md.certainty_present = True
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
