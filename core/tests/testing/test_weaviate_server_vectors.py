"""Conformance: vector search through the real weaviate-client (v4) against the test server.

Named vectors in the schema, vectors in writes (gRPC batches and REST), the pluggable
text2vec-transformers vectoriser, near_vector / near_object / near_text, and hybrid search
with both fusions. Expected values are computed here from Weaviate's definitions (see
``core/testing/weaviate_server/vectors.py`` for where each comes from in the server's
source), independently of the server's code, and compared to what the client returns.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import weaviate.classes.config as wc
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, HybridFusion, HybridVector, MetadataQuery
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateInsertManyAllFailedError,
    WeaviateQueryError,
)

from core.testing.weaviate_server import SEARCH

DOCS = "Docs"
TOL = 1e-5
DIM_MISMATCH = "vector dimensions do not match the index dimensions"


def u(i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"vector-test-{i}"))


def text_properties() -> list[wc.Property]:
    return [
        wc.Property(name="title", data_type=wc.DataType.TEXT),
        wc.Property(name="text", data_type=wc.DataType.TEXT),
        wc.Property(name="status", data_type=wc.DataType.TEXT),
        wc.Property(name="n", data_type=wc.DataType.INT),
    ]


def self_provided(client, name: str = DOCS, distance=wc.VectorDistances.COSINE):
    return client.collections.create(
        name,
        properties=text_properties(),
        vector_config=wc.Configure.Vectors.self_provided(
            name="default",
            vector_index_config=wc.Configure.VectorIndex.hnsw(distance_metric=distance),
        ),
    )


def transformers(client, name: str = DOCS):
    return client.collections.create(
        name,
        properties=text_properties(),
        vector_config=wc.Configure.Vectors.text2vec_transformers(
            name="default", source_properties=["title", "text"]
        ),
    )


def cosine_distance(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return max(0.0, 1.0 - float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))


class KeywordModel:
    """A stand-in embedding model: counts of a few words plus a constant dimension."""

    WORDS = ("cat", "dog", "fish")

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self.embed(t) for t in texts]

    @classmethod
    def embed(cls, text: str) -> list[float]:
        words = text.lower().split()
        return [float(words.count(w)) for w in cls.WORDS] + [1.0]


def ids(result) -> list[str]:
    return [str(o.uuid) for o in result.objects]


# -- schema -------------------------------------------------------------------------------------


def test_self_provided_named_vector_round_trips_through_config(weaviate_client, weaviate_server):
    collection = self_provided(weaviate_client)
    config = collection.config.get()
    assert list(config.vector_config) == ["default"]
    named = config.vector_config["default"]
    assert named.vectorizer.vectorizer == wc.Vectorizers.NONE
    assert named.vector_index_config.distance_metric == wc.VectorDistances.COSINE
    # Like an HNSW index, the dimension is learned from the first vector written.
    assert weaviate_server.store.dimensions(DOCS) == {}
    collection.data.insert({"title": "first"}, uuid=u(1), vector={"default": [1.0, 0.0, 0.0]})
    assert weaviate_server.store.dimensions(DOCS) == {"default": 3}


def test_text2vec_transformers_vector_round_trips_through_config(weaviate_client):
    collection = transformers(weaviate_client)
    config = collection.config.get()
    named = config.vector_config["default"]
    assert named.vectorizer.vectorizer == wc.Vectorizers.TEXT2VEC_TRANSFORMERS
    assert named.vectorizer.source_properties == ["title", "text"]
    # The module's defaults are filled in, as on the server.
    assert named.vectorizer.model == {"vectorizeClassName": True, "poolingStrategy": "masked_mean"}
    assert named.vector_index_config.distance_metric == wc.VectorDistances.COSINE
    title = next(p for p in config.properties if p.name == "title")
    assert title.vectorizer_configs["text2vec-transformers"].skip is False
    assert title.vectorizer_configs["text2vec-transformers"].vectorize_property_name is False


def test_a_vectorizer_module_the_server_lacks_is_refused(weaviate_client):
    with pytest.raises(UnexpectedStatusCodeError) as info:
        weaviate_client.collections.create(
            DOCS,
            properties=text_properties(),
            vector_config=wc.Configure.Vectors.text2vec_openai(name="default"),
        )
    assert info.value.status_code == 422
    assert 'no module with name "text2vec-openai" present' in info.value.message


# -- vectors in writes ------------------------------------------------------------------------


def test_insert_many_sends_named_vectors_as_float32(weaviate_client, weaviate_server):
    collection = self_provided(weaviate_client)
    result = collection.data.insert_many(
        [
            DataObject(properties={"title": "a"}, uuid=u(1), vector={"default": [0.5, 0.25, 1.0]}),
            DataObject(properties={"title": "b"}, uuid=u(2), vector=[1.0, 2.0, 3.0]),
        ]
    )
    assert result.errors == {}
    record = weaviate_server.store.record(DOCS, u(1))
    assert record.vector_list("default") == [0.5, 0.25, 1.0]
    # An unnamed vector goes to the collection's only named vector.
    assert weaviate_server.store.record(DOCS, u(2)).vectors.keys() == {"default"}
    fetched = collection.query.fetch_object_by_id(u(2), include_vector=True)
    assert fetched.vector == {"default": [1.0, 2.0, 3.0]}


def test_rest_insert_replace_and_update_carry_vectors(weaviate_client, weaviate_server):
    collection = self_provided(weaviate_client)
    collection.data.insert({"title": "a"}, uuid=u(1), vector={"default": [1.0, 0.0]})
    assert weaviate_server.store.record(DOCS, u(1)).vector_list("default") == [1.0, 0.0]
    collection.data.replace(u(1), {"title": "b"}, vector=[0.0, 1.0])
    assert weaviate_server.store.record(DOCS, u(1)).vector_list("default") == [0.0, 1.0]
    collection.data.update(u(1), {"title": "c"}, vector={"default": [0.5, 0.5]})
    assert weaviate_server.store.record(DOCS, u(1)).vector_list("default") == [0.5, 0.5]
    # PATCH without a vector keeps the one the object has.
    collection.data.update(u(1), {"title": "d"})
    record = weaviate_server.store.record(DOCS, u(1))
    assert (record.properties["title"], record.vector_list("default")) == ("d", [0.5, 0.5])


def test_dimension_mismatch_is_a_per_object_batch_error(weaviate_client, weaviate_server):
    collection = self_provided(weaviate_client)
    result = collection.data.insert_many(
        [
            DataObject(properties={"title": "4d"}, uuid=u(1), vector={"default": [1.0, 0, 0, 0]}),
            DataObject(properties={"title": "3d"}, uuid=u(2), vector={"default": [1.0, 0, 0]}),
            DataObject(properties={"title": "4d"}, uuid=u(3), vector={"default": [0, 1.0, 0, 0]}),
        ]
    )
    assert list(result.errors) == [1]
    assert result.errors[1].message == (
        f"Validate vector index default for target vector {u(2)}: new node has a vector with "
        f"length 3. Existing nodes have vectors with length 4: {DIM_MISMATCH}"
    )
    assert sorted(weaviate_server.store.objects(DOCS)) == sorted([u(1), u(3)])
    with pytest.raises(WeaviateInsertManyAllFailedError, match="Existing nodes have vectors"):
        collection.data.insert_many(
            [DataObject(properties={"title": "5d"}, vector={"default": [1.0] * 5})]
        )


def test_dimension_mismatch_over_rest_is_a_500(weaviate_client):
    collection = self_provided(weaviate_client)
    collection.data.insert({"title": "a"}, uuid=u(1), vector=[1.0, 0.0, 0.0])
    with pytest.raises(UnexpectedStatusCodeError) as info:
        collection.data.insert({"title": "b"}, uuid=u(2), vector=[1.0, 0.0])
    assert info.value.status_code == 500
    assert "new node has a vector with length 2. Existing nodes have vectors with length 3" in (
        info.value.message
    )


def test_a_vector_name_the_collection_lacks_is_refused(weaviate_client):
    collection = self_provided(weaviate_client)
    result = collection.data.insert_many(
        [
            DataObject(properties={"title": "ok"}, vector={"default": [1.0, 0.0]}),
            DataObject(properties={"title": "bad"}, vector={"other": [1.0, 0.0]}),
        ]
    )
    assert {i: e.message for i, e in result.errors.items()} == {
        1: "collection Docs does not have configuration for vector other"
    }
    with pytest.raises(UnexpectedStatusCodeError) as info:
        collection.data.insert({"title": "bad"}, vector={"other": [1.0, 0.0]})
    assert info.value.status_code == 422
    assert "invalid object: collection Docs does not have configuration for vector other" in (
        info.value.message
    )


# -- the vectoriser module ------------------------------------------------------------------------


def test_objects_without_a_vector_are_vectorized_once_per_batch(weaviate_client, weaviate_server):
    model = KeywordModel()
    weaviate_server.set_vectorizer(model)
    collection = transformers(weaviate_client)
    result = collection.data.insert_many(
        [
            DataObject(properties={"title": "a cat", "text": "meow", "n": 3}, uuid=u(1)),
            DataObject(properties={"title": "a dog", "text": "woof"}, uuid=u(2)),
            DataObject(properties={"title": "own"}, uuid=u(3), vector={"default": [9, 9, 9, 9]}),
        ]
    )
    assert result.errors == {}
    # The class name first (vectorizeClassName), then the source properties in name
    # order ("text" before "title"), joined with spaces; "n" is not a source property.
    assert model.calls == [["Docs meow a cat", "Docs woof a dog"]]
    store = weaviate_server.store
    assert store.record(DOCS, u(1)).vector_list("default") == KeywordModel.embed("meow a cat")
    assert store.record(DOCS, u(2)).vector_list("default") == [0.0, 1.0, 0.0, 1.0]
    assert store.record(DOCS, u(3)).vector_list("default") == [9.0, 9.0, 9.0, 9.0]
    # REST too.
    collection.data.insert({"title": "fish", "text": "blub"}, uuid=u(4))
    assert model.calls[-1] == ["Docs blub fish"]
    assert store.record(DOCS, u(4)).vector_list("default") == [0.0, 0.0, 1.0, 1.0]


def test_a_replace_with_the_same_text_is_not_revectorized(weaviate_client, weaviate_server):
    model = KeywordModel()
    weaviate_server.set_vectorizer(model)
    collection = transformers(weaviate_client)
    collection.data.insert({"title": "a cat", "text": "meow", "n": 1}, uuid=u(1))
    collection.data.replace(u(1), {"title": "a cat", "text": "meow", "n": 2})
    assert len(model.calls) == 1
    collection.data.update(u(1), {"text": "meow dog"})
    assert model.calls[-1] == ["Docs meow dog a cat"]
    assert weaviate_server.store.record(DOCS, u(1)).vector_list("default") == [1.0, 1.0, 0.0, 1.0]


def test_without_the_module_writes_fail_as_on_a_server_without_it(weaviate_client):
    collection = transformers(weaviate_client)
    with pytest.raises(UnexpectedStatusCodeError) as info:
        collection.data.insert({"title": "a cat"})
    assert info.value.status_code == 500
    assert 'vectorize target vector default: no vectorizer found for class "Docs"' in (
        info.value.message
    )
    with pytest.raises(
        WeaviateInsertManyAllFailedError, match='no vectorizer found for class "Docs"'
    ):
        collection.data.insert_many([{"title": "a cat"}, {"title": "a dog"}])


def test_near_text_embeds_the_query_with_the_vectorizer(weaviate_client, weaviate_server):
    model = KeywordModel()
    weaviate_server.set_vectorizer(model)
    collection = transformers(weaviate_client)
    collection.data.insert_many(
        [
            DataObject(properties={"title": "a cat", "text": "meow"}, uuid=u(1)),
            DataObject(properties={"title": "a dog", "text": "woof"}, uuid=u(2)),
            DataObject(properties={"title": "a fish", "text": "blub"}, uuid=u(3)),
        ]
    )
    res = collection.query.near_text(
        "dog", target_vector="default", return_metadata=MetadataQuery(distance=True)
    )
    assert model.calls[-1] == ["dog"]
    assert ids(res)[0] == u(2)
    assert res.objects[0].metadata.distance == pytest.approx(0.0, abs=TOL)
    assert res.objects[1].metadata.distance == pytest.approx(
        cosine_distance([1, 0, 0, 1], [0, 1, 0, 1]), abs=TOL
    )
    # Several concepts: each embedded, then averaged.
    both = collection.query.near_text(["cat", "dog"], return_metadata=MetadataQuery(distance=True))
    mean = np.mean([KeywordModel.embed("cat"), KeywordModel.embed("dog")], axis=0)
    expected = cosine_distance(mean, KeywordModel.embed("a fish blub"))
    by_id = {str(o.uuid): o.metadata.distance for o in both.objects}
    assert by_id[u(3)] == pytest.approx(expected, abs=TOL)


def test_near_text_without_a_vectorizer_module_is_the_servers_error(weaviate_client):
    collection = self_provided(weaviate_client)
    with pytest.raises(WeaviateQueryError) as info:
        collection.query.near_text("cat")
    assert (
        "could not vectorize input for collection Docs with search-type nearText. Make sure "
        "a vectorizer module is configured for this collection"
    ) in info.value.message


# -- near_vector -------------------------------------------------------------------------------

VECTORS = {
    1: [1.0, 0.0, 0.0, 0.0],
    2: [0.9, 0.1, 0.0, 0.0],
    3: [0.5, 0.5, 0.5, 0.5],
    4: [0.0, 1.0, 0.0, 0.0],
    5: [-1.0, 0.0, 0.0, 0.0],
}


def seeded(client):
    collection = self_provided(client)
    result = collection.data.insert_many(
        [
            DataObject(
                properties={"title": f"doc {i}", "status": "open" if i % 2 else "closed"},
                uuid=u(i),
                vector={"default": v},
            )
            for i, v in VECTORS.items()
        ]
    )
    assert result.errors == {}
    return collection


def test_near_vector_ranks_by_cosine_distance(weaviate_client):
    collection = seeded(weaviate_client)
    query = [1.0, 0.2, 0.0, 0.0]
    res = collection.query.near_vector(
        near_vector=query,
        target_vector="default",
        limit=10,
        return_metadata=MetadataQuery(distance=True, certainty=True, score=True),
    )
    expected = sorted(VECTORS, key=lambda i: cosine_distance(query, VECTORS[i]))
    assert ids(res) == [u(i) for i in expected]
    assert ids(res)[0] == u(2)
    for obj, i in zip(res.objects, expected, strict=True):
        distance = cosine_distance(query, VECTORS[i])
        assert obj.metadata.distance == pytest.approx(distance, abs=TOL)
        assert obj.metadata.certainty == pytest.approx(1 - distance / 2, abs=TOL)
        # The server answers a requested score with 0 for a vector search.
        assert obj.metadata.score == 0.0
        assert obj.metadata.explain_score is None  # not asked for
    # The opposite vector is last, at a distance close to 2.
    assert ids(res)[-1] == u(5)
    assert res.objects[-1].metadata.distance == pytest.approx(1 + 1 / np.hypot(1, 0.2), abs=TOL)


def test_near_vector_filters_before_the_limit(weaviate_client):
    collection = self_provided(weaviate_client)
    # 20 "closed" objects right at the query, 10 "open" ones further away.
    objects = [
        DataObject(properties={"status": "closed"}, uuid=u(i), vector={"default": [1.0, 0.01 * i]})
        for i in range(20)
    ] + [
        DataObject(
            properties={"status": "open"}, uuid=u(100 + i), vector={"default": [0.1 * i, 1.0]}
        )
        for i in range(10)
    ]
    assert collection.data.insert_many(objects).errors == {}
    res = collection.query.near_vector(
        [1.0, 0.0],
        limit=5,
        filters=Filter.by_property("status").equal("open"),
        return_metadata=MetadataQuery(distance=True),
    )
    # A full page of matches, the nearest open ones (largest first coordinate).
    assert ids(res) == [u(109), u(108), u(107), u(106), u(105)]
    assert all(o.properties["status"] == "open" for o in res.objects)
    page2 = collection.query.near_vector(
        [1.0, 0.0], limit=5, offset=5, filters=Filter.by_property("status").equal("open")
    )
    assert ids(page2) == [u(104), u(103), u(102), u(101), u(100)]


def test_near_vector_distance_and_certainty_thresholds(weaviate_client):
    collection = seeded(weaviate_client)
    query = [1.0, 0.0, 0.0, 0.0]
    # distances: 1 -> 0, 2 -> ~0.0061, 3 -> 0.5, 4 -> 1, 5 -> 2
    near = collection.query.near_vector(query, distance=0.6)
    assert ids(near) == [u(1), u(2), u(3)]
    certain = collection.query.near_vector(query, certainty=0.9)  # distance <= 0.2
    assert ids(certain) == [u(1), u(2)]
    with pytest.raises(WeaviateQueryError, match="cannot provide distance and certainty"):
        collection.query.near_vector(query, distance=0.5, certainty=0.5)


def test_near_vector_without_target_uses_the_only_named_vector(weaviate_client):
    collection = seeded(weaviate_client)
    res = collection.query.near_vector([0.0, 1.0, 0.0, 0.0], limit=1)
    assert ids(res) == [u(4)]
    with pytest.raises(WeaviateQueryError) as info:
        collection.query.near_vector([0.0, 1.0, 0.0, 0.0], target_vector="nope")
    assert (
        "class Docs does not have named vector nope configured. Available named vectors [default]"
    ) in info.value.message


def test_near_vector_with_the_wrong_dimension_is_an_error(weaviate_client):
    collection = seeded(weaviate_client)
    with pytest.raises(WeaviateQueryError, match="3 vs 4: vector lengths don't match"):
        collection.query.near_vector([1.0, 0.0, 0.0])


def test_certainty_needs_a_cosine_index(weaviate_client):
    collection = self_provided(weaviate_client, distance=wc.VectorDistances.DOT)
    collection.data.insert_many(
        [
            DataObject(properties={"title": "a"}, uuid=u(1), vector={"default": [1.0, 2.0]}),
            DataObject(properties={"title": "b"}, uuid=u(2), vector={"default": [3.0, 1.0]}),
        ]
    )
    res = collection.query.near_vector([1.0, 1.0], return_metadata=MetadataQuery(distance=True))
    # dot distance is the negative dot product: b (-4) before a (-3).
    assert ids(res) == [u(2), u(1)]
    assert [o.metadata.distance for o in res.objects] == [-4.0, -3.0]
    with pytest.raises(WeaviateQueryError) as info:
        collection.query.near_vector([1.0, 1.0], return_metadata=MetadataQuery(certainty=True))
    assert (
        "can't compute and return certainty when vector index is configured with dot distance"
    ) in info.value.message


def test_return_metadata_flags_are_honoured(weaviate_client, weaviate_server):
    collection = seeded(weaviate_client)
    plain = collection.query.near_vector([1.0, 0.0, 0.0, 0.0], limit=2)
    md = plain.objects[0].metadata
    assert (md.distance, md.certainty, md.score, md.explain_score) == (None, None, None, None)
    assert plain.objects[0].uuid == uuid.UUID(u(1))
    assert weaviate_server.counters[SEARCH] == 1
    listed = collection.query.fetch_objects(limit=1, return_metadata=MetadataQuery(score=True))
    assert listed.objects[0].metadata.score == 0.0
    assert listed.objects[0].metadata.distance is None


# -- near_object -------------------------------------------------------------------------------


def test_near_object_includes_the_object_itself_first(weaviate_client):
    collection = seeded(weaviate_client)
    res = collection.query.near_object(
        near_object=u(3),
        target_vector="default",
        limit=3,
        return_metadata=MetadataQuery(distance=True, certainty=True),
    )
    # Weaviate searches with the object's own vector and does not leave it out.
    assert ids(res)[0] == u(3)
    assert res.objects[0].metadata.distance == pytest.approx(0.0, abs=TOL)
    assert res.objects[0].metadata.certainty == pytest.approx(1.0, abs=TOL)
    expected = sorted(VECTORS, key=lambda i: cosine_distance(VECTORS[3], VECTORS[i]))
    assert ids(res) == [u(i) for i in expected[:3]]
    assert res.objects[1].metadata.distance == pytest.approx(
        cosine_distance(VECTORS[3], VECTORS[expected[1]]), abs=TOL
    )


def test_near_object_of_a_missing_object_is_an_error(weaviate_client):
    collection = seeded(weaviate_client)
    with pytest.raises(WeaviateQueryError, match="nearObject params: vector not found"):
        collection.query.near_object(u(99))


# -- hybrid ------------------------------------------------------------------------------------

# "login" occurs twice in A and D, once in B, never in C (the keyword leg counts
# occurrences in title and text). Cosine similarity to the query vector [1, 0, 0, 0]:
# A 1, B 0.8, C 0, D 0.
HYBRID_DOCS = {
    "A": ({"title": "login page", "text": "the login form"}, [1.0, 0.0, 0.0, 0.0]),
    "B": ({"title": "login", "text": "nothing"}, [0.8, 0.6, 0.0, 0.0]),
    "C": ({"title": "search", "text": "slow search"}, [0.0, 1.0, 0.0, 0.0]),
    "D": ({"title": "other", "text": "login issues login"}, [0.0, 0.0, 1.0, 0.0]),
}
# uuids in the order of the names, so that ties broken by uuid read alphabetically.
HYBRID_IDS = {k: f"00000000-0000-0000-0000-00000000000{i + 1}" for i, k in enumerate(HYBRID_DOCS)}
QUERY_VECTOR = [1.0, 0.0, 0.0, 0.0]


def hybrid_collection(client):
    collection = self_provided(client)
    result = collection.data.insert_many(
        [
            DataObject(properties=props, uuid=HYBRID_IDS[k], vector={"default": v})
            for k, (props, v) in HYBRID_DOCS.items()
        ]
    )
    assert result.errors == {}
    return collection


def names(result) -> list[str]:
    back = {v: k for k, v in HYBRID_IDS.items()}
    return [back[str(o.uuid)] for o in result.objects]


def test_hybrid_relative_score_fusion(weaviate_client):
    collection = hybrid_collection(weaviate_client)
    res = collection.query.hybrid(
        "login",
        alpha=0.5,
        vector=QUERY_VECTOR,
        target_vector="default",
        fusion_type=HybridFusion.RELATIVE_SCORE,
        return_metadata=MetadataQuery(score=True, explain_score=True),
    )
    # Each leg min-max normalised, weighted alpha (vector) and 1 - alpha (keyword):
    # vector A 1, B 0.8, C 0, D 0; keyword A 1, D 1, B 0 (counts 2, 2, 1).
    expected = {"A": 0.5 * 1 + 0.5 * 1, "D": 0.5 * 0 + 0.5 * 1, "B": 0.5 * 0.8 + 0.5 * 0, "C": 0.0}
    assert names(res) == ["A", "D", "B", "C"]
    for obj, name in zip(res.objects, names(res), strict=True):
        assert obj.metadata.score == pytest.approx(expected[name], abs=TOL)
    explain = res.objects[0].metadata.explain_score
    assert f"Hybrid (Result Set keyword,bm25) Document {HYBRID_IDS['A']}: original score 2" in (
        explain
    )
    assert "Hybrid (Result Set vector,hybridVector)" in explain
    assert res.objects[0].metadata.distance is None  # hybrid results carry no distance


def test_hybrid_ranked_fusion(weaviate_client):
    collection = hybrid_collection(weaviate_client)
    res = collection.query.hybrid(
        "login",
        alpha=0.5,
        vector=QUERY_VECTOR,
        fusion_type=HybridFusion.RANKED,
        return_metadata=MetadataQuery(score=True, explain_score=True),
    )
    # Each leg adds alpha-weighted 1 / (rank + 60), rank from 0.
    # vector ranks: A 0, B 1, C 2, D 3 (C and D tie, insertion order); keyword: A 0, D 1, B 2.
    expected = {
        "A": 0.5 / 60 + 0.5 / 60,
        "B": 0.5 / 61 + 0.5 / 62,
        "D": 0.5 / 63 + 0.5 / 61,
        "C": 0.5 / 62,
    }
    assert names(res) == ["A", "B", "D", "C"]
    for obj, name in zip(res.objects, names(res), strict=True):
        assert obj.metadata.score == pytest.approx(expected[name], abs=TOL)
    assert (
        f"Hybrid (Result Set vector,hybridVector) Document {HYBRID_IDS['C']} contributed "
        "0.008064516 to the score"
    ) in res.objects[3].metadata.explain_score


def test_hybrid_alpha_zero_is_keyword_only_and_one_vector_only(weaviate_client):
    collection = hybrid_collection(weaviate_client)
    keyword = collection.query.hybrid(
        "login", alpha=0, vector=QUERY_VECTOR, return_metadata=MetadataQuery(score=True)
    )
    assert names(keyword) == ["A", "D", "B"]  # C has no "login"; ties by uuid
    assert [o.metadata.score for o in keyword.objects] == pytest.approx([1.0, 1.0, 0.0])
    vector = collection.query.hybrid(
        "login", alpha=1, vector=QUERY_VECTOR, return_metadata=MetadataQuery(score=True)
    )
    assert names(vector) == ["A", "B", "C", "D"]
    assert [o.metadata.score for o in vector.objects] == pytest.approx([1.0, 0.8, 0.0, 0.0])


def test_hybrid_default_alpha_is_the_clients_0_7(weaviate_client):
    collection = hybrid_collection(weaviate_client)
    res = collection.query.hybrid(
        "login", vector=QUERY_VECTOR, return_metadata=MetadataQuery(score=True)
    )
    alpha = float(np.float32(0.7))  # alpha travels as a float32
    expected = {"A": 1.0, "B": alpha * 0.8, "D": 1 - alpha, "C": 0.0}
    assert names(res) == ["A", "B", "D", "C"]
    for obj, name in zip(res.objects, names(res), strict=True):
        assert obj.metadata.score == pytest.approx(expected[name], abs=TOL)


def test_hybrid_ties_are_broken_by_uuid(weaviate_client):
    collection = self_provided(weaviate_client)
    low, high = "00000000-0000-0000-0000-000000000001", "ffffffff-0000-0000-0000-000000000001"
    # Two identical objects, inserted high first.
    for uid in (high, low):
        collection.data.insert({"title": "same words"}, uuid=uid, vector=[1.0, 1.0])
    relative = collection.query.hybrid(
        "same", vector=[1.0, 1.0], fusion_type=HybridFusion.RELATIVE_SCORE
    )
    # Equal fused scores and equal leg scores: the lower uuid first.
    assert ids(relative) == [low, high]
    ranked = collection.query.hybrid("same", vector=[1.0, 1.0], fusion_type=HybridFusion.RANKED)
    # Ranked fusion is no tie: within each leg equal scores keep docID (insertion) order,
    # so the first inserted object holds rank 0 in both legs.
    assert ids(ranked) == [high, low]


def test_hybrid_filters_limit_and_offset(weaviate_client):
    collection = self_provided(weaviate_client)
    objects = [
        DataObject(
            properties={"title": f"report {i}", "status": "open" if i % 3 == 0 else "closed"},
            uuid=u(i),
            vector={"default": [1.0, float(i)]},
        )
        for i in range(30)
    ]
    assert collection.data.insert_many(objects).errors == {}
    only_open = Filter.by_property("status").equal("open")
    first = collection.query.hybrid("report", vector=[1.0, 0.0], filters=only_open, limit=4)
    second = collection.query.hybrid(
        "report", vector=[1.0, 0.0], filters=only_open, limit=4, offset=4
    )
    # Ten open objects (0, 3, ..., 27); every keyword score is equal, so the vector leg
    # orders them: nearest to [1, 0] first.
    assert ids(first) == [u(0), u(3), u(6), u(9)]
    assert ids(second) == [u(12), u(15), u(18), u(21)]


def test_hybrid_query_properties_and_max_vector_distance(weaviate_client):
    collection = hybrid_collection(weaviate_client)
    titles_only = collection.query.hybrid("login", alpha=0, query_properties=["title"])
    assert names(titles_only) == ["A", "B"]
    near_only = collection.query.hybrid(
        "login", alpha=0.5, vector=QUERY_VECTOR, max_vector_distance=0.5
    )
    # Only A (distance 0) and B (0.2) are within 0.5 of the query vector; the keyword
    # leg is cut to them too.
    assert names(near_only) == ["A", "B"]


def test_hybrid_near_vector_sub_search(weaviate_client):
    collection = hybrid_collection(weaviate_client)
    res = collection.query.hybrid(
        "login",
        alpha=1,
        vector=HybridVector.near_vector(QUERY_VECTOR, distance=0.5),
        return_metadata=MetadataQuery(explain_score=True),
    )
    assert names(res) == ["A", "B"]
    assert "Result Set vector,nearVector" in res.objects[0].metadata.explain_score


def test_hybrid_without_a_vector_embeds_the_query(weaviate_client, weaviate_server):
    model = KeywordModel()
    weaviate_server.set_vectorizer(model)
    collection = transformers(weaviate_client)
    collection.data.insert_many(
        [
            DataObject(properties={"title": "dog", "text": "woof"}, uuid=u(1)),
            DataObject(properties={"title": "cat", "text": "meow"}, uuid=u(2)),
        ]
    )
    res = collection.query.hybrid("cat", alpha=1, return_metadata=MetadataQuery(score=True))
    assert model.calls[-1] == ["cat"]
    assert ids(res) == [u(2), u(1)]


def test_hybrid_without_a_vector_or_a_module_is_the_servers_error(weaviate_client):
    collection = hybrid_collection(weaviate_client)
    with pytest.raises(WeaviateQueryError) as info:
        collection.query.hybrid("login")
    assert "VectorFromInput was called without vectorizer on class Docs for input login" in (
        info.value.message
    )
    # alpha 0 needs no vector at all
    assert names(collection.query.hybrid("login", alpha=0)) == ["A", "D", "B"]


# -- a legacy collection (class-level vector) ------------------------------------------------------


def test_legacy_collection_searches_its_class_level_vector(weaviate_client, weaviate_server):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        collection = weaviate_client.collections.create(
            "Legacy",
            properties=[wc.Property(name="title", data_type=wc.DataType.TEXT)],
            vectorizer_config=wc.Configure.Vectorizer.none(),
        )
    collection.data.insert_many(
        [
            DataObject(properties={"title": "x"}, uuid=u(1), vector=[1.0, 0.0]),
            DataObject(properties={"title": "y"}, uuid=u(2), vector=[0.0, 1.0]),
        ]
    )
    assert weaviate_server.store.record("Legacy", u(1)).vector_list() == [1.0, 0.0]
    res = collection.query.near_vector([0.1, 1.0], limit=1)
    assert ids(res) == [u(2)]


def test_the_example_in_docs_testing_md(weaviate_server, weaviate_client):
    def model(texts):
        return [[float("cat" in t), float("dog" in t), 1.0] for t in texts]

    weaviate_server.set_vectorizer(model)
    docs = weaviate_client.collections.create(
        "Docs",
        properties=[wc.Property(name="title", data_type=wc.DataType.TEXT)],
        vector_config=wc.Configure.Vectors.text2vec_transformers(
            name="default", source_properties=["title"]
        ),
    )
    docs.data.insert_many([{"title": "a cat"}, {"title": "a dog"}])
    assert docs.query.near_text("dog", limit=1).objects[0].properties["title"] == "a dog"
    # With a vectoriser the server lists the module, as a real one does.
    assert "text2vec-transformers" in weaviate_client.get_meta()["modules"]
