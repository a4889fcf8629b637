"""Real-server semantics the test server reproduces because Agira could trip over them.

Some tests talk raw HTTP (httpx) to check exact status codes and bodies; the others go
through the client to show what application code will see.
"""

from __future__ import annotations

import httpx
import pytest
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateQueryError

from core.testing.weaviate_server import WeaviateTestServer
from core.testing.weaviate_server.pytest_plugin import connect
from core.tests.testing import COLLECTION, agira_object, create_agira_collection, uid


@pytest.fixture
def http(weaviate_server):
    with httpx.Client(base_url=weaviate_server.url, timeout=5) as client:
        yield client


def _post_object(http, properties, class_name=COLLECTION, **extra):
    return http.post("/v1/objects", json={"class": class_name, "properties": properties, **extra})


# -- the REST protocol --------------------------------------------------------------------------


def test_meta_and_probes(http):
    meta = http.get("/v1/meta").json()
    assert meta["version"].startswith("1.36.")
    assert meta["grpcMaxMessageSize"] == 104858000
    assert http.get("/v1/.well-known/ready").status_code == 200
    assert http.get("/v1/.well-known/live").status_code == 200
    assert http.get("/v1/.well-known/openid-configuration").status_code == 404


def test_nodes_reports_batch_stats(http, weaviate_client):
    create_agira_collection(weaviate_client).data.insert_many([agira_object(1)])
    node = http.get("/v1/nodes").json()["nodes"][0]
    assert node["status"] == "HEALTHY"
    assert node["batchStats"]["queueLength"] == 0
    assert node["stats"]["objectCount"] == 1
    verbose = http.get("/v1/nodes", params={"output": "verbose"}).json()["nodes"][0]
    assert verbose["shards"][0]["class"] == COLLECTION


def test_unknown_paths_and_methods(http):
    missing = http.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json() == {"code": 404, "message": "path /v1/nothing was not found"}
    assert http.patch("/v1/schema", json={}).status_code == 405


def test_missing_objects_answer_404_with_empty_body(http, weaviate_client):
    create_agira_collection(weaviate_client)
    path = f"/v1/objects/{COLLECTION}/{uid(1)}"
    for response in (
        http.get(path),
        http.head(path),
        http.delete(path),
        http.put(path, json={"class": COLLECTION, "properties": {"title": "x"}}),
        http.patch(path, json={"class": COLLECTION, "properties": {"title": "x"}}),
    ):
        assert response.status_code == 404, response.request.method
        assert response.content == b""


def test_object_json_shape(http, weaviate_client):
    create_agira_collection(weaviate_client)
    _post_object(http, {"title": "t"}, id=uid(1), vector=[1.0, 2.0])
    body = http.get(f"/v1/objects/{COLLECTION}/{uid(1)}", params={"include": "vector"}).json()
    assert body["class"] == COLLECTION
    assert body["id"] == uid(1)
    assert body["properties"] == {"title": "t"}
    # The collection has one named vector: the server files an unnamed vector under it.
    assert body["vectors"] == {"default": [1.0, 2.0]}
    assert "vector" not in body
    assert body["creationTimeUnix"] == body["lastUpdateTimeUnix"]
    assert http.head(f"/v1/objects/{COLLECTION}/{uid(1)}").status_code == 204


def test_head_is_answered_like_get_without_a_body(http, weaviate_client):
    create_agira_collection(weaviate_client)
    response = http.head(f"/v1/schema/{COLLECTION}")
    assert response.status_code == 200
    assert response.content == b""
    assert http.head("/v1/schema/Missing").status_code == 404


def test_keep_alive_reuses_one_connection(http, weaviate_server):
    for _ in range(20):
        assert http.get("/v1/meta").status_code == 200
    assert weaviate_server.counters["http connections accepted"] == 1


def test_api_key_auth(weaviate_server, http):
    weaviate_server.auth.set_api_keys(["secret"])
    assert http.get("/v1/meta").json() == {
        "code": 401,
        "message": "anonymous access not enabled, please provide an auth scheme such as OIDC",
    }
    assert http.get("/v1/meta", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert http.get("/v1/meta", headers={"Authorization": "Bearer secret"}).status_code == 200
    # probes stay open, as on a real server
    assert http.get("/v1/.well-known/ready").status_code == 200


# -- validation of object properties ----------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        (
            {"title": 42},
            "invalid object: invalid text property 'title' on class 'AgiraObject': "
            "not a string, but float64",
        ),
        (
            {"title": True},
            "invalid object: invalid text property 'title' on class 'AgiraObject': "
            "not a string, but bool",
        ),
        (
            {"size_bytes": 1.5},
            "invalid object: invalid integer property 'size_bytes' on class 'AgiraObject': "
            "requires an integer, the given value is '1.5'",
        ),
        (
            {"size_bytes": "12"},
            "invalid object: invalid integer property 'size_bytes' on class 'AgiraObject': "
            "requires an integer, the given value is '12'",
        ),
        (
            {"created_at": "yesterday"},
            "invalid object: invalid date property 'created_at' on class 'AgiraObject': "
            "requires a string with a RFC3339 formatted date, but the given value is "
            "'yesterday'",
        ),
        (
            {"created_at": "2025-01-02T03:04:05"},  # RFC 3339 needs a zone
            "invalid object: invalid date property 'created_at' on class 'AgiraObject': "
            "requires a string with a RFC3339 formatted date, but the given value is "
            "'2025-01-02T03:04:05'",
        ),
    ],
)
def test_type_validation_messages(http, weaviate_client, properties, message):
    create_agira_collection(weaviate_client)
    response = _post_object(http, properties)
    assert response.status_code == 422
    assert response.json() == {"error": [{"message": message}]}


def test_validation_error_reaches_the_client(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    with pytest.raises(UnexpectedStatusCodeError) as info:
        collection.data.insert({"size_bytes": "many"})
    assert info.value.status_code == 422
    assert "invalid integer property 'size_bytes'" in info.value.message


def test_whole_doubles_become_ints_and_dates_are_normalized(http, weaviate_client, weaviate_server):
    create_agira_collection(weaviate_client)
    _post_object(
        http,
        {
            "size_bytes": 3.0,
            "created_at": "2025-01-02T03:04:05.120000+00:00",
            "updated_at": "2025-01-02T05:04:05+02:00",
        },
        id=uid(1),
    )
    assert weaviate_server.store.get(COLLECTION, uid(1)) == {
        "size_bytes": 3,
        # as Go prints a time.Time (RFC3339Nano): zeros trimmed, UTC as "Z", offsets kept
        "created_at": "2025-01-02T03:04:05.12Z",
        "updated_at": "2025-01-02T05:04:05+02:00",
    }


def test_null_properties_are_dropped(http, weaviate_client, weaviate_server):
    create_agira_collection(weaviate_client)
    _post_object(http, {"title": "t", "text": None}, id=uid(1))
    assert weaviate_server.store.get(COLLECTION, uid(1)) == {"title": "t"}


def test_tenants_are_refused(http, weaviate_client):
    create_agira_collection(weaviate_client)
    response = _post_object(http, {"title": "t"}, tenant="acme")
    assert response.status_code == 422
    assert "multi-tenancy disabled" in response.json()["error"][0]["message"]


# -- names ----------------------------------------------------------------------------------


def test_class_and_property_names_are_normalized(http, weaviate_server):
    body = {"class": "agiraThing", "properties": [{"name": "Title", "dataType": ["text"]}]}
    created = http.post("/v1/schema", json=body).json()
    assert created["class"] == "AgiraThing"
    assert created["properties"][0]["name"] == "title"
    assert http.get("/v1/schema/agiraThing").json()["class"] == "AgiraThing"
    assert weaviate_server.store.collections() == ["AgiraThing"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"class": "Bad-Name"}, "'Bad-Name' is not a valid class name"),
        (
            {"class": "Thing", "properties": [{"name": "bad-name", "dataType": ["text"]}]},
            "'bad-name' is not a valid property name. Property names in Weaviate are "
            "restricted to valid GraphQL names, which must be “/[_A-Za-z][_0-9A-Za-z]*/”.",
        ),
        (
            {"class": "Thing", "properties": [{"name": "id", "dataType": ["text"]}]},
            "'id' is a reserved property name",
        ),
        (
            {
                "class": "Thing",
                "properties": [
                    {"name": "title", "dataType": ["text"]},
                    {"name": "Title", "dataType": ["text"]},
                ],
            },
            'class "Thing": conflict for property "title": already in use or provided '
            "multiple times",
        ),
        (
            {
                "class": "Thing",
                "properties": [{"name": "n", "dataType": ["int"], "tokenization": "word"}],
            },
            "tokenization is not allowed for data type 'int'",
        ),
        (
            {"class": "Thing", "vectorizer": "text2vec-openai"},
            'vectorizer: no module with name "text2vec-openai" present',
        ),
    ],
)
def test_schema_rules(http, body, message):
    response = http.post("/v1/schema", json=body)
    assert response.status_code == 422
    assert response.json() == {"error": [{"message": message}]}


def test_existing_class_is_422_case_insensitively(http):
    assert http.post("/v1/schema", json={"class": "Thing"}).status_code == 200
    response = http.post("/v1/schema", json={"class": "THING"})
    assert response.status_code == 422
    assert response.json()["error"][0]["message"] == 'class name "THING" already exists'


def test_unsupported_data_types_are_refused_clearly(http):
    response = http.post(
        "/v1/schema",
        json={"class": "Thing", "properties": [{"name": "meta", "dataType": ["object"]}]},
    )
    assert response.status_code == 422
    assert "not supported by the Weaviate test server" in response.json()["error"][0]["message"]


# -- auto-schema ----------------------------------------------------------------------------


def test_auto_schema_creates_collections_and_properties(weaviate_client, weaviate_server):
    # Like a real server (AUTOSCHEMA_ENABLED defaults to true): writing to a collection
    # that does not exist creates it.
    weaviate_client.collections.get("Typo").data.insert(
        {"title": "t", "count": 2, "when": "2025-01-02T03:04:05Z", "tags": ["a"]}
    )
    types = {
        p.name: p.data_type.value
        for p in weaviate_client.collections.get("Typo").config.get().properties
    }
    assert types == {"title": "text", "count": "number", "when": "date", "tags": "text[]"}
    assert weaviate_server.store.count("Typo") == 1


def test_without_auto_schema_unknown_collections_and_properties_fail(
    weaviate_client, weaviate_server
):
    weaviate_server.store.auto_schema = False
    with pytest.raises(UnexpectedStatusCodeError) as info:
        weaviate_client.collections.get("Typo").data.insert({"title": "t"})
    assert info.value.status_code == 422
    collection = create_agira_collection(weaviate_client)
    result = collection.data.insert_many([{"titel": "typo"}, {"title": "fine"}])
    assert result.errors[0].message == (
        "invalid object: no such prop with name 'titel' found in class 'AgiraObject' in the "
        "schema. Check your schema files for which properties in this class are available"
    )
    assert weaviate_server.store.count(COLLECTION) == 1


# -- filters follow the inverted index ---------------------------------------------------------


def test_equal_on_word_tokenized_text_matches_tokens_not_strings(weaviate_client):
    collection = weaviate_client.collections.create(
        "Keyed",
        properties=[
            Property(name="word_key", data_type=DataType.TEXT),
            Property(name="field_key", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
        ],
    )
    for i, key in enumerate(["item-42", "42-item", "Item 42 copy", "item-4"]):
        collection.data.insert({"word_key": key, "field_key": key}, uuid=uid(i))

    def keys(where):
        return sorted(
            o.properties["field_key"] for o in collection.query.fetch_objects(filters=where).objects
        )

    # word tokenization: "item-42" is the tokens {item, 42}; every object holding both
    # matches, whatever the order, case or punctuation
    assert keys(Filter.by_property("word_key").equal("item-42")) == [
        "42-item",
        "Item 42 copy",
        "item-42",
    ]
    # field tokenization compares the whole value
    assert keys(Filter.by_property("field_key").equal("item-42")) == ["item-42"]
    # Like matches single tokens under word tokenization, the whole value under field
    assert keys(Filter.by_property("word_key").like("*item/4*")) == []
    assert keys(Filter.by_property("word_key").like("4?")) == ["42-item", "Item 42 copy", "item-42"]
    assert keys(Filter.by_property("field_key").like("item-4*")) == ["item-4", "item-42"]


def test_filter_on_unknown_property_is_a_query_error(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    with pytest.raises(WeaviateQueryError) as info:
        collection.query.fetch_objects(filters=Filter.by_property("nope").equal("x"))
    assert "no such prop with name 'nope' found in class 'AgiraObject'" in info.value.message


def test_timestamp_filters_need_index_timestamps(weaviate_client):
    plain = create_agira_collection(weaviate_client)
    with pytest.raises(WeaviateQueryError, match="timestamps must be indexed"):
        plain.query.fetch_objects(
            filters=Filter.by_creation_time().greater_than(agira_object(0)["created_at"])
        )
    indexed = create_agira_collection(
        weaviate_client,
        name="Indexed",
        inverted_index_config=Configure.inverted_index(index_timestamps=True),
    )
    indexed.data.insert({"title": "now"}, uuid=uid(1))
    found = indexed.query.fetch_objects(
        filters=Filter.by_creation_time().greater_than(agira_object(0)["created_at"])
    )
    assert [str(o.uuid) for o in found.objects] == [uid(1)]


def test_cursor_cannot_be_combined_with_filters(weaviate_client):
    collection = create_agira_collection(weaviate_client)
    with pytest.raises(WeaviateQueryError, match="cursor api: invalid 'after' parameter"):
        collection.query.fetch_objects(
            after=uid(1), filters=Filter.by_property("status").equal("open")
        )


def test_media_search_is_refused_not_faked(weaviate_client):
    # Vector search is served (test_weaviate_server_vectors.py); searching by images and
    # other media needs a multi-modal module the test server does not have.
    collection = create_agira_collection(weaviate_client)
    with pytest.raises(WeaviateQueryError, match="not supported by the Weaviate test server"):
        collection.query.near_image("aGVsbG8=")


def test_delete_many_is_capped_at_query_maximum_results():
    with WeaviateTestServer(query_maximum_results=5) as server:
        client = connect(server)
        try:
            collection = create_agira_collection(client)
            collection.data.insert_many([DataObject(properties=agira_object(i)) for i in range(8)])
            first = collection.data.delete_many(where=Filter.by_property("org_id").equal("org-1"))
            assert (first.matches, server.store.count(COLLECTION)) == (5, 3)
        finally:
            client.close()
