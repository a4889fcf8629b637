"""Conformance: the real weaviate-client (v4) driven against the test server.

Every call goes through the client's public API over real HTTP and gRPC on loopback;
the assertions are on what the client returns and on what the server stored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import uuid
import warnings

import pytest
import weaviate
from weaviate.classes.config import Configure, DataType, Property
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, MetadataQuery, Sort
from weaviate.exceptions import UnexpectedStatusCodeError

from core.testing.weaviate_server import (
    BATCH_OBJECTS,
    BATCH_OBJECTS_SENT,
    HEALTH_CHECK,
    OBJECTS_CREATED,
    SEARCH,
)
from core.testing.weaviate_server.pytest_plugin import connect, grpc_test_config
from core.tests.testing import (
    COLLECTION,
    T0,
    agira_object,
    create_agira_collection,
    uid,
)

# -- connecting ---------------------------------------------------------------------------


def test_connect_to_custom_with_skip_init_checks(weaviate_server):
    client = weaviate.connect_to_custom(**weaviate_server.connect_kwargs(), skip_init_checks=True)
    try:
        assert client.is_connected()
        assert client.is_ready()
        assert client.get_meta()["version"] == weaviate_server.version
    finally:
        client.close()
    # skip_init_checks: no OIDC probe, no gRPC health check
    assert weaviate_server.counters["GET /v1/.well-known/openid-configuration"] == 0
    assert weaviate_server.counters[HEALTH_CHECK] == 0


def test_connect_with_init_checks_never_leaves_loopback(weaviate_server, weaviate_loopback_only):
    client = weaviate.connect_to_custom(
        **weaviate_server.connect_kwargs(),
        additional_config=weaviate.classes.init.AdditionalConfig(grpc_config=grpc_test_config()),
    )
    try:
        assert client.is_ready()
        assert client.is_live()
    finally:
        client.close()
    assert weaviate_loopback_only == []
    counters = weaviate_server.counters
    assert counters["GET /v1/.well-known/openid-configuration"] == 1
    assert counters["GET /v1/meta"] == 1
    assert counters[HEALTH_CHECK] == 2  # connect() and is_live()
    # the client's "is there a newer client" check went to the stand-in, not to PyPI
    assert counters["GET /pypi/weaviate-client/json"] == 1


def test_loopback_guard_blocks_other_addresses(weaviate_loopback_only):
    import httpx

    with pytest.raises(httpx.ConnectError):
        httpx.get("http://example.invalid/")
    assert weaviate_loopback_only == ["resolve example.invalid"]
    weaviate_loopback_only.clear()


def test_connect_to_local(weaviate_server, weaviate_loopback_only):
    client = weaviate.connect_to_local(
        host="127.0.0.1",
        port=weaviate_server.http_port,
        grpc_port=weaviate_server.grpc_port,
        additional_config=weaviate.classes.init.AdditionalConfig(grpc_config=grpc_test_config()),
    )
    try:
        assert client.is_ready()
        assert client.collections.list_all() == {}
    finally:
        client.close()
    assert weaviate_loopback_only == []


def test_close_leaves_no_resource_warning(weaviate_server):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = connect(weaviate_server)
        collection = create_agira_collection(client)
        collection.data.insert(agira_object(1), uuid=uid(1))
        assert collection.query.fetch_object_by_id(uid(1)) is not None
        client.close()
        del client, collection
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_async_client_works_too(weaviate_server):
    async def scenario() -> int:
        async with weaviate.use_async_with_custom(
            **weaviate_server.connect_kwargs(), skip_init_checks=True
        ) as client:
            collection = await client.collections.create(
                "AsyncThing", properties=[Property(name="title", data_type=DataType.TEXT)]
            )
            await collection.data.insert({"title": "from asyncio"})
            result = await collection.aggregate.over_all(total_count=True)
            return result.total_count

    # A thread of its own: other tests (Playwright's sync API) may leave an event loop
    # running in the main thread, where asyncio.run() refuses to start.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(asyncio.run, scenario()).result(timeout=60) == 1


# -- collections ----------------------------------------------------------------------------


def test_collections_create_exists_delete(weaviate_client, weaviate_server):
    assert not weaviate_client.collections.exists(COLLECTION)
    collection = create_agira_collection(weaviate_client)
    assert collection.name == COLLECTION
    assert weaviate_client.collections.exists(COLLECTION)
    assert weaviate_server.store.collections() == [COLLECTION]

    weaviate_client.collections.delete(COLLECTION)
    assert not weaviate_client.collections.exists(COLLECTION)
    # deleting a missing collection is not an error on a real server either
    weaviate_client.collections.delete(COLLECTION)


def test_config_get_parses_server_defaults(weaviate_client):
    create_agira_collection(weaviate_client)
    config = weaviate_client.collections.get(COLLECTION).config.get()
    assert config.name == COLLECTION
    by_name = {p.name: p for p in config.properties}
    assert by_name["title"].data_type == DataType.TEXT
    assert by_name["title"].tokenization.value == "word"
    assert by_name["title"].index_searchable is True
    assert by_name["size_bytes"].data_type == DataType.INT
    assert by_name["size_bytes"].index_searchable is False
    assert by_name["created_at"].data_type == DataType.DATE
    assert config.inverted_index_config.bm25.k1 == pytest.approx(1.2)
    assert config.replication_config.factor == 1
    assert config.sharding_config.desired_count == 1
    assert config.vector_config["default"].vectorizer.vectorizer.value == "none"
    assert config.multi_tenancy_config.enabled is False


def test_legacy_vectorizer_none_config_parses(weaviate_client):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        weaviate_client.collections.create(
            "Legacy",
            properties=[Property(name="title", data_type=DataType.TEXT)],
            vectorizer_config=Configure.Vectorizer.none(),
        )
    config = weaviate_client.collections.get("Legacy").config.get()
    assert config.vectorizer.value == "none"
    assert config.vector_index_type.value == "hnsw"
    assert config.vector_index_config.distance_metric.value == "cosine"
    simple = weaviate_client.collections.list_all(simple=True)
    assert list(simple) == ["Legacy"]


def test_add_property(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    collection.config.add_property(Property(name="labels", data_type=DataType.TEXT_ARRAY))
    names = [p.name for p in collection.config.get().properties]
    assert "labels" in names
    collection.data.insert({"labels": ["a", "b"]}, uuid=uid(1))
    assert weaviate_server.store.get(COLLECTION, uid(1)) == {"labels": ["a", "b"]}


def test_creating_an_existing_collection_is_422(weaviate_client):
    create_agira_collection(weaviate_client)
    with pytest.raises(UnexpectedStatusCodeError) as info:
        create_agira_collection(weaviate_client)
    assert info.value.status_code == 422
    assert 'class name "AgiraObject" already exists' in info.value.message


# -- single objects over REST -----------------------------------------------------------------


def test_insert_replace_update_delete_exists(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    store = weaviate_server.store

    returned = collection.data.insert(agira_object(1), uuid=uid(1))
    assert str(returned) == uid(1)
    assert collection.data.exists(uid(1))
    assert store.get(COLLECTION, uid(1))["title"] == "Item number 1"
    created = store.record(COLLECTION, uid(1)).created

    collection.data.replace(uid(1), {"title": "Replaced", "size_bytes": 7})
    assert store.get(COLLECTION, uid(1)) == {"title": "Replaced", "size_bytes": 7}
    assert store.record(COLLECTION, uid(1)).created == created

    collection.data.update(uid(1), {"status": "done"})
    assert store.get(COLLECTION, uid(1)) == {
        "title": "Replaced",
        "size_bytes": 7,
        "status": "done",
    }

    assert collection.data.delete_by_id(uid(1)) is True
    assert not collection.data.exists(uid(1))
    assert collection.data.delete_by_id(uid(1)) is False  # 404 is "not deleted", no error
    assert store.count(COLLECTION) == 0


def test_insert_generates_an_id(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    new_id = collection.data.insert({"title": "no id given"})
    assert weaviate_server.store.get(COLLECTION, new_id) == {"title": "no id given"}


def test_update_of_missing_object_is_404_with_empty_body(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    with pytest.raises(UnexpectedStatusCodeError) as info:
        collection.data.update(uid(404), {"title": "x"})
    assert info.value.status_code == 404
    assert "Object was not updated." in info.value.message
    assert "Unexpected status code: 404, with response body: None" in info.value.message


def test_replace_of_missing_object_is_404(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    with pytest.raises(UnexpectedStatusCodeError) as info:
        collection.data.replace(uid(404), {"title": "x"})
    assert info.value.status_code == 404
    assert "Object was not replaced." in info.value.message


def test_insert_of_existing_id_is_422(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert(agira_object(1), uuid=uid(1))
    with pytest.raises(UnexpectedStatusCodeError) as info:
        collection.data.insert(agira_object(1), uuid=uid(1))
    assert info.value.status_code == 422
    assert f"id '{uid(1)}' already exists" in info.value.message


def test_vectors_round_trip(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert({"title": "v"}, uuid=uid(1), vector=[0.5, 0.25, 1.0])
    obj = collection.query.fetch_object_by_id(uid(1), include_vector=True)
    assert obj.vector == {"default": [0.5, 0.25, 1.0]}
    assert weaviate_server.store.record(COLLECTION, uid(1)).vector_list() == [0.5, 0.25, 1.0]


def test_every_supported_type_round_trips_through_batch_and_rest(weaviate_client):
    collection = weaviate_client.collections.create(
        "Typed",
        properties=[
            Property(name="t", data_type=DataType.TEXT_ARRAY),
            Property(name="i", data_type=DataType.INT_ARRAY),
            Property(name="n", data_type=DataType.NUMBER_ARRAY),
            Property(name="b", data_type=DataType.BOOL_ARRAY),
            Property(name="d", data_type=DataType.DATE_ARRAY),
            Property(name="u", data_type=DataType.UUID_ARRAY),
            Property(name="num", data_type=DataType.NUMBER),
            Property(name="flag", data_type=DataType.BOOL),
            Property(name="ref", data_type=DataType.UUID),
            Property(name="raw", data_type=DataType.BLOB),
        ],
    )
    full = {
        "t": ["a", "b"],
        "i": [1, 2],
        "n": [1.5, 2.5],
        "b": [True, False],
        "d": [T0],
        "u": [uuid.UUID(int=5)],
        "num": 3.25,
        "flag": True,
        "ref": uuid.UUID(int=7),
        "raw": "aGVsbG8=",
    }
    empty = {"t": [], "i": [], "n": [], "b": [], "d": [], "u": []}
    result = collection.data.insert_many(
        [DataObject(properties=full, uuid=uid(1)), DataObject(properties=empty, uuid=uid(2))]
    )
    assert result.errors == {}
    collection.data.insert(full, uuid=uid(3))  # the same over REST
    without_blob = {k: v for k, v in full.items() if k != "raw"}
    for key in (uid(1), uid(3)):
        # blobs only come back when asked for by name, as on the real server
        assert collection.query.fetch_object_by_id(key).properties == without_blob
        raw = collection.query.fetch_object_by_id(key, return_properties=["raw"])
        assert raw.properties == {"raw": "aGVsbG8="}
    assert collection.query.fetch_object_by_id(uid(2)).properties == empty


# -- queries over gRPC -------------------------------------------------------------------------


def test_fetch_object_by_id(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert(agira_object(1), uuid=uid(1))
    obj = collection.query.fetch_object_by_id(uid(1))
    assert str(obj.uuid) == uid(1)
    assert obj.collection == COLLECTION
    assert obj.properties["title"] == "Item number 1"
    assert obj.properties["size_bytes"] == 10
    assert obj.properties["created_at"] == agira_object(1)["created_at"]
    assert obj.metadata.creation_time is not None
    assert obj.metadata.last_update_time >= obj.metadata.creation_time
    assert collection.query.fetch_object_by_id(uid(2)) is None


def test_fetch_object_by_id_with_property_selection(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert(agira_object(1), uuid=uid(1))
    obj = collection.query.fetch_object_by_id(uid(1), return_properties=["title", "status"])
    assert obj.properties == {"title": "Item number 1", "status": "closed"}


def test_fetch_objects_with_filters(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert_many(
        [DataObject(properties=agira_object(i), uuid=uid(i)) for i in range(10)]
    )

    def ids(where, **kwargs):
        res = collection.query.fetch_objects(filters=where, limit=100, **kwargs)
        return sorted(o.properties["object_id"] for o in res.objects)

    assert ids(Filter.by_property("status").equal("open")) == sorted(
        f"item-{i}" for i in range(0, 10, 2)
    )
    assert ids(
        Filter.by_property("status").equal("open")
        & Filter.by_property("project_id").equal("project-0")
    ) == ["item-0", "item-6"]
    assert ids(
        Filter.by_property("external_key").equal("AG-1")
        | Filter.by_property("external_key").equal("AG-2")
    ) == ["item-1", "item-2"]
    assert ids(Filter.by_property("sha256").like("*07")) == ["item-7"]
    assert ids(Filter.by_property("size_bytes").greater_than(70)) == ["item-8", "item-9"]
    assert ids(Filter.by_property("created_at").less_than(agira_object(2)["created_at"])) == [
        "item-0",
        "item-1",
    ]
    assert ids(Filter.by_property("created_at").greater_or_equal(T0)) == sorted(
        f"item-{i}" for i in range(10)
    )
    assert ids(Filter.by_id().equal(uid(3))) == ["item-3"]
    assert ids(Filter.by_id().contains_any([uid(3), uid(4)])) == ["item-3", "item-4"]
    assert ids(Filter.by_property("status").not_equal("open")) == sorted(
        f"item-{i}" for i in range(1, 10, 2)
    )


def test_fetch_objects_by_ids(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert_many(
        [DataObject(properties=agira_object(i), uuid=uid(i)) for i in range(6)]
    )
    weaviate_server.counters.reset()
    res = collection.query.fetch_objects_by_ids([uid(1), uid(4), uid(99)])
    assert sorted(str(o.uuid) for o in res.objects) == sorted([uid(1), uid(4)])
    assert weaviate_server.counters[SEARCH] == 1


def test_fetch_objects_limit_offset_sort(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert_many([agira_object(i) for i in range(25)])
    # no limit: the server's QUERY_DEFAULTS_LIMIT (10)
    assert len(collection.query.fetch_objects().objects) == 10
    res = collection.query.fetch_objects(
        limit=3, offset=2, sort=Sort.by_property("size_bytes", ascending=False)
    )
    assert [o.properties["size_bytes"] for o in res.objects] == [220, 210, 200]


def test_bm25_keyword_search(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert({"title": "Broken login page", "text": "login fails"}, uuid=uid(1))
    collection.data.insert({"title": "Slow search", "text": "the login is fine"}, uuid=uid(2))
    collection.data.insert({"title": "Unrelated", "text": "nothing here"}, uuid=uid(3))
    res = collection.query.bm25("login", return_metadata=MetadataQuery(score=True))
    assert [str(o.uuid) for o in res.objects] == [uid(1), uid(2)]
    assert res.objects[0].metadata.score > res.objects[1].metadata.score
    only_title = collection.query.bm25("login", query_properties=["title"])
    assert [str(o.uuid) for o in only_title.objects] == [uid(1)]
    filtered = collection.query.bm25("login", filters=Filter.by_property("title").equal("slow"))
    assert [str(o.uuid) for o in filtered.objects] == [uid(2)]


def test_iterator_over_2500_objects(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    expected = set()
    with collection.batch.fixed_size(batch_size=500) as batch:
        for i in range(2500):
            expected.add(str(batch.add_object(properties={"object_id": f"o{i}", "size_bytes": i})))
    assert collection.batch.failed_objects == []
    seen = [str(o.uuid) for o in collection.iterator()]
    assert len(seen) == 2500
    assert set(seen) == expected
    assert seen == sorted(seen)  # the cursor walks uuid order, like the real server
    # 25 full pages of 100 and one empty page that ends the walk
    assert weaviate_server.counters[SEARCH] == 26


def test_aggregate_total_count(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    assert collection.aggregate.over_all(total_count=True).total_count == 0
    collection.data.insert_many([agira_object(i) for i in range(7)])
    assert collection.aggregate.over_all(total_count=True).total_count == 7
    open_items = collection.aggregate.over_all(
        total_count=True, filters=Filter.by_property("status").equal("open")
    )
    assert open_items.total_count == 4


# -- batches over gRPC ----------------------------------------------------------------------------


def test_insert_many_with_a_per_object_error(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    result = collection.data.insert_many(
        [
            DataObject(properties=agira_object(0), uuid=uid(0)),
            DataObject(properties=agira_object(1, title=123), uuid=uid(1)),
            DataObject(properties=agira_object(2), uuid=uid(2)),
        ]
    )
    assert result.has_errors
    assert list(result.errors) == [1]
    assert result.errors[1].message == (
        "invalid object: invalid text property 'title' on class 'AgiraObject': "
        "not a string, but float64"
    )
    assert sorted(str(u) for u in result.uuids.values()) == sorted([uid(0), uid(2)])
    assert set(weaviate_server.store.objects(COLLECTION)) == {uid(0), uid(2)}
    assert weaviate_server.counters[BATCH_OBJECTS] == 1


def test_insert_many_is_an_upsert(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert_many([DataObject(properties=agira_object(1), uuid=uid(1))])
    created = weaviate_server.store.record(COLLECTION, uid(1)).created
    collection.data.insert_many(
        [DataObject(properties=agira_object(1, title="second"), uuid=uid(1))]
    )
    assert weaviate_server.store.count(COLLECTION) == 1
    assert weaviate_server.store.get(COLLECTION, uid(1))["title"] == "second"
    assert weaviate_server.store.record(COLLECTION, uid(1)).created == created
    assert weaviate_server.counters[OBJECTS_CREATED] == 1


def test_batch_fixed_size(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    # 250 = 5 x 50: a partial last batch would make the client wait a second for more
    with collection.batch.fixed_size(batch_size=50, concurrent_requests=2) as batch:
        for i in range(250):
            batch.add_object(properties=agira_object(i), uuid=uid(i))
    assert collection.batch.failed_objects == []
    assert weaviate_server.store.count(COLLECTION) == 250
    assert weaviate_server.counters[BATCH_OBJECTS] == 5
    assert weaviate_server.counters[BATCH_OBJECTS_SENT] == 250
    stored = weaviate_server.store.get(COLLECTION, uid(42))
    assert stored["size_bytes"] == 420  # an int again, although it travelled as a double
    assert stored["created_at"] == "2025-01-02T03:46:05.123456Z"


def test_batch_dynamic(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    with collection.batch.dynamic() as batch:
        for i in range(300):
            batch.add_object(properties=agira_object(i), uuid=uid(i))
    assert collection.batch.failed_objects == []
    assert weaviate_server.store.count(COLLECTION) == 300
    assert weaviate_server.counters["GET /v1/nodes"] >= 1  # dynamic batching polls batchStats


def test_client_level_batch(weaviate_client, weaviate_server):
    create_agira_collection(weaviate_client)
    with weaviate_client.batch.fixed_size(batch_size=40) as batch:
        for i in range(120):
            batch.add_object(collection=COLLECTION, properties=agira_object(i))
    assert weaviate_client.batch.failed_objects == []
    assert weaviate_server.store.count(COLLECTION) == 120


def test_delete_many(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert_many(
        [DataObject(properties=agira_object(i), uuid=uid(i)) for i in range(10)]
    )
    where = Filter.by_property("status").equal("closed")

    dry = collection.data.delete_many(where=where, dry_run=True, verbose=True)
    assert dry.matches == 5
    assert sorted(str(o.uuid) for o in dry.objects) == sorted(uid(i) for i in range(1, 10, 2))
    assert weaviate_server.store.count(COLLECTION) == 10

    done = collection.data.delete_many(where=where)
    assert (done.matches, done.successful, done.failed, done.objects) == (5, 5, 0, None)
    assert weaviate_server.store.count(COLLECTION) == 5
    assert collection.data.delete_many(where=where).matches == 0


def test_delete_many_by_ids(weaviate_client, weaviate_server):
    collection = create_agira_collection(weaviate_client)
    collection.data.insert_many(
        [DataObject(properties=agira_object(i), uuid=uid(i)) for i in range(4)]
    )
    collection.data.delete_many(where=Filter.by_id().contains_any([uid(0), uid(3)]))
    assert set(weaviate_server.store.objects(COLLECTION)) == {uid(1), uid(2)}


def test_store_can_be_seeded_and_read(weaviate_client, weaviate_server):
    create_agira_collection(weaviate_client)
    weaviate_server.store.put(COLLECTION, uid(9), {"title": "seeded", "size_bytes": 3})
    obj = weaviate_client.collections.get(COLLECTION).query.fetch_object_by_id(uid(9))
    assert obj.properties == {"title": "seeded", "size_bytes": 3}
    assert uuid.UUID(uid(9)) == obj.uuid

    store = weaviate_server.store
    assert store.exists("agiraObject")
    schema = store.schema(COLLECTION)  # the JSON GET /v1/schema/{class} returns
    assert schema["class"] == COLLECTION
    assert schema["vectorConfig"]["default"]["vectorIndexType"] == "hnsw"
    assert store.count() == 1
    assert store.delete_all_objects(COLLECTION) == 1
    assert store.count(COLLECTION) == 0
    assert store.collections() == [COLLECTION]
