"""Each fault switch, and the exception the real client raises when it is on.

The client retries gRPC UNAVAILABLE with exponential backoff (1 s, 2 s, 4 s, ...). Tests
that exhaust those retries replace the sleep in ``weaviate.retry`` with a no-op, so they
show the client's real end state without waiting for it.
"""

from __future__ import annotations

import socket
import threading
import types

import grpc
import pytest
import weaviate
from weaviate.classes.data import DataObject
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateBatchError,
    WeaviateConnectionError,
    WeaviateDeleteManyError,
    WeaviateInsertManyAllFailedError,
    WeaviateQueryError,
    WeaviateRetryError,
    WeaviateStartUpError,
    WeaviateTimeoutError,
)

from core.testing.weaviate_server import (
    AGGREGATE,
    BATCH_DELETE,
    BATCH_OBJECTS,
    OBJECTS_CREATED,
    OBJECTS_UPDATED,
    SEARCH,
)
from core.testing.weaviate_server.pytest_plugin import connect, grpc_test_config
from core.tests.testing import COLLECTION, agira_object, create_agira_collection, uid


@pytest.fixture
def no_backoff(monkeypatch):
    """Make the client's retry backoff instant (the retries themselves still happen)."""
    monkeypatch.setattr("weaviate.retry.time", types.SimpleNamespace(sleep=lambda _s: None))


@pytest.fixture
def collection(weaviate_client):
    return create_agira_collection(weaviate_client)


def _wait_for_grpc(client) -> None:
    # After up() the client's channel reconnects on its own; wait for it without
    # guessing a duration (the private attribute is the only handle on the channel).
    grpc.channel_ready_future(client._connection._grpc_channel).result(timeout=10)


# -- down ------------------------------------------------------------------------------------


def test_down_refuses_connections_and_up_restores_the_same_ports(
    weaviate_server, weaviate_client, collection, monkeypatch
):
    http_port, grpc_port = weaviate_server.http_port, weaviate_server.grpc_port
    collection.data.insert(agira_object(1), uuid=uid(1))

    weaviate_server.faults.down()
    assert weaviate_server.faults.is_down
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", http_port), timeout=2).close()
    with pytest.raises(WeaviateConnectionError):
        collection.data.insert(agira_object(2), uuid=uid(2))
    with pytest.raises(WeaviateConnectionError):
        weaviate_client.collections.exists(COLLECTION)
    with monkeypatch.context() as patch:
        patch.setattr("weaviate.retry.time", types.SimpleNamespace(sleep=lambda _s: None))
        with pytest.raises(WeaviateQueryError) as info:
            collection.query.fetch_object_by_id(uid(1))
    assert "UNAVAILABLE" in str(info.value)

    weaviate_server.faults.up()
    assert (weaviate_server.http_port, weaviate_server.grpc_port) == (http_port, grpc_port)
    collection.data.insert(agira_object(2), uuid=uid(2))  # the same client recovers
    _wait_for_grpc(weaviate_client)
    assert collection.query.fetch_object_by_id(uid(1)) is not None
    assert weaviate_server.store.count(COLLECTION) == 2  # data survives an outage


def test_connect_while_down_is_a_startup_error(weaviate_server):
    with weaviate_server.faults.outage(), pytest.raises(WeaviateStartUpError):
        weaviate.connect_to_custom(**weaviate_server.connect_kwargs(), skip_init_checks=True)


def test_batch_while_down_reports_every_object_failed(weaviate_server, collection, no_backoff):
    weaviate_server.faults.down()
    with pytest.raises(WeaviateRetryError):
        collection.data.insert_many([agira_object(1)])
    weaviate_server.faults.up()


# -- latency ---------------------------------------------------------------------------------


@pytest.fixture
def impatient_client(weaviate_server):
    config = AdditionalConfig(
        timeout=Timeout(query=0.2, insert=0.2, init=2), grpc_config=grpc_test_config()
    )
    client = connect(weaviate_server, additional_config=config)
    yield client
    client.close()


def test_latency_makes_rest_calls_time_out(weaviate_server, impatient_client):
    collection = create_agira_collection(impatient_client)
    weaviate_server.faults.set_latency(3.0, protocol="rest")
    with pytest.raises(WeaviateTimeoutError):
        collection.data.insert(agira_object(1))


def test_latency_makes_grpc_calls_miss_their_deadline(weaviate_server, impatient_client):
    collection = create_agira_collection(impatient_client)
    weaviate_server.faults.set_latency(3.0, protocol="grpc")
    with pytest.raises(WeaviateQueryError) as info:
        collection.query.fetch_objects()
    assert "Deadline Exceeded" in info.value.message
    collection.data.insert(agira_object(1))  # REST is unaffected


def test_a_request_sleeping_through_a_reset_is_dropped_not_served(weaviate_server):
    # The client gave up on it long ago; serving it after the reset would write into the
    # next test's store.
    weaviate_server.faults.set_latency(30, protocol="rest")
    body = b'{"class": "Late", "properties": {"title": "too late"}}'
    with socket.create_connection(("127.0.0.1", weaviate_server.http_port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/objects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        for _ in range(1000):  # at most ~10 s for the request to arrive
            if weaviate_server.counters["POST /v1/objects"]:
                break
            threading.Event().wait(0.01)
        weaviate_server.faults.clear()
        assert sock.recv(1024) == b""  # closed without an answer
    assert weaviate_server.store.collections() == []


# -- failing the next requests ----------------------------------------------------------------


def test_fail_next_rest_request_with_500(weaviate_server, collection):
    weaviate_server.faults.fail_next(1, protocol="rest", endpoints=["POST /v1/objects"])
    with pytest.raises(UnexpectedStatusCodeError) as info:
        collection.data.insert(agira_object(1), uuid=uid(1))
    assert info.value.status_code == 500
    collection.data.insert(agira_object(1), uuid=uid(1))  # only the next one failed
    assert weaviate_server.counters["POST /v1/objects"] == 2


def test_fail_next_with_any_status(weaviate_server, collection):
    weaviate_server.faults.fail_next(1, protocol="rest", http_status=503, message="overloaded")
    with pytest.raises(UnexpectedStatusCodeError) as info:
        collection.data.insert(agira_object(1))
    assert info.value.status_code == 503
    assert info.value.error == {"error": [{"message": "overloaded"}]}


def test_one_unavailable_search_is_retried_by_the_client(weaviate_server, collection, no_backoff):
    collection.data.insert(agira_object(1), uuid=uid(1))
    weaviate_server.faults.fail_next(1, protocol="grpc", endpoints=[SEARCH])
    assert collection.query.fetch_object_by_id(uid(1)) is not None
    assert weaviate_server.counters[SEARCH] == 2


def test_persistent_unavailable_search_is_a_query_error(weaviate_server, collection, no_backoff):
    weaviate_server.faults.fail_next(100, protocol="grpc", endpoints=[SEARCH])
    with pytest.raises(WeaviateQueryError):
        collection.query.fetch_objects()
    assert weaviate_server.counters[SEARCH] == 6  # the first try and five retries


def test_failed_batch_call_in_insert_many(weaviate_server, collection):
    weaviate_server.faults.fail_next(
        1, endpoints=[BATCH_OBJECTS], grpc_code=grpc.StatusCode.INTERNAL, message="disk full"
    )
    with pytest.raises(WeaviateBatchError, match="disk full"):
        collection.data.insert_many([agira_object(1)])
    assert weaviate_server.store.count(COLLECTION) == 0


def test_unavailable_batch_call_in_insert_many_exhausts_retries(
    weaviate_server, collection, no_backoff
):
    weaviate_server.faults.fail_next(100, endpoints=[BATCH_OBJECTS])
    with pytest.raises(WeaviateRetryError):
        collection.data.insert_many([agira_object(1)])
    assert weaviate_server.counters[BATCH_OBJECTS] == 4  # insert_many allows 2 retries + 1


def test_failed_batch_call_in_a_batch_context(weaviate_server, collection):
    weaviate_server.faults.fail_next(
        1, endpoints=[BATCH_OBJECTS], grpc_code=grpc.StatusCode.INTERNAL, message="disk full"
    )
    with collection.batch.fixed_size(batch_size=10) as batch:
        for i in range(20):
            batch.add_object(properties=agira_object(i), uuid=uid(i))
    failed = collection.batch.failed_objects
    assert len(failed) == 10  # the whole first batch, the second one went through
    assert all("disk full" in f.message for f in failed)
    assert weaviate_server.store.count(COLLECTION) == 10


def test_failed_delete_many(weaviate_server, collection):
    weaviate_server.faults.fail_next(
        1, endpoints=[BATCH_DELETE], grpc_code=grpc.StatusCode.INTERNAL
    )
    with pytest.raises(WeaviateDeleteManyError, match="INTERNAL"):
        collection.data.delete_many(where=Filter.by_property("status").equal("open"))


def test_failed_aggregate(weaviate_server, collection):
    weaviate_server.faults.fail_next(1, endpoints=[AGGREGATE], grpc_code=grpc.StatusCode.INTERNAL)
    with pytest.raises(WeaviateQueryError):
        collection.aggregate.over_all(total_count=True)


def test_probes_only_fail_when_named(weaviate_server, weaviate_client):
    weaviate_server.faults.fail_next(1, protocol="rest")
    assert weaviate_client.is_ready()  # an unnamed fault skips /.well-known probes
    weaviate_server.faults.fail_next(1, endpoints=["GET /v1/.well-known/ready"])
    assert not weaviate_client.is_ready()


def test_not_ready(weaviate_server, weaviate_client):
    weaviate_server.faults.set_not_ready()
    assert not weaviate_client.is_ready()


# -- failing chosen objects inside a batch ---------------------------------------------------


def test_fail_objects_by_uuid(weaviate_server, collection):
    weaviate_server.faults.fail_objects(uuids=[uid(1)], message="vectorizer rate limit")
    result = collection.data.insert_many(
        [DataObject(properties=agira_object(i), uuid=uid(i)) for i in range(3)]
    )
    assert {i: e.message for i, e in result.errors.items()} == {1: "vectorizer rate limit"}
    assert set(weaviate_server.store.objects(COLLECTION)) == {uid(0), uid(2)}


def test_fail_objects_by_predicate_in_a_batch_context(weaviate_server, collection):
    weaviate_server.faults.fail_objects(
        where=lambda _col, _uid, props: props.get("status") == "closed"
    )
    with collection.batch.fixed_size(batch_size=10) as batch:
        for i in range(10):
            batch.add_object(properties=agira_object(i), uuid=uid(i))
    assert sorted(str(f.object_.uuid) for f in collection.batch.failed_objects) == sorted(
        uid(i) for i in range(1, 10, 2)
    )
    assert weaviate_server.store.count(COLLECTION) == 5


def test_all_objects_failing_in_insert_many(weaviate_server, collection):
    weaviate_server.faults.fail_objects(where=lambda *_: True, message="nope")
    with pytest.raises(WeaviateInsertManyAllFailedError, match="nope"):
        collection.data.insert_many([agira_object(1), agira_object(2)])


# -- API keys ----------------------------------------------------------------------------------


def test_connect_without_a_key_to_a_keyed_server(weaviate_server):
    weaviate_server.auth.set_api_keys(["secret"])
    with pytest.raises(UnexpectedStatusCodeError) as info:
        connect(weaviate_server)
    assert info.value.status_code == 401


def test_rejected_api_key(weaviate_server):
    weaviate_server.auth.set_api_keys(["secret"])
    client = connect(weaviate_server, auth_credentials=Auth.api_key("secret"))
    try:
        collection = create_agira_collection(client)
        collection.data.insert(agira_object(1), uuid=uid(1))
        assert collection.query.fetch_object_by_id(uid(1)) is not None

        weaviate_server.faults.reject_api_key()
        with pytest.raises(UnexpectedStatusCodeError) as info:
            collection.data.insert(agira_object(2))
        assert info.value.status_code == 401
        assert info.value.error == {"code": 401, "message": "invalid api key: key not found"}
        with pytest.raises(WeaviateQueryError, match="invalid api key"):
            collection.query.fetch_object_by_id(uid(1))
        with pytest.raises(WeaviateBatchError, match="invalid api key"):
            collection.data.insert_many([agira_object(3)])
    finally:
        client.close()
    with pytest.raises(UnexpectedStatusCodeError) as info:
        connect(weaviate_server, auth_credentials=Auth.api_key("secret"))
    assert info.value.status_code == 401


# -- counters ----------------------------------------------------------------------------------


def test_counters_prove_a_drain_made_one_call_and_a_rerun_wrote_nothing(
    weaviate_server, collection
):
    objects = [DataObject(properties=agira_object(i), uuid=uid(i)) for i in range(5)]
    weaviate_server.counters.reset()
    collection.data.insert_many(objects)
    assert weaviate_server.counters[BATCH_OBJECTS] == 1
    assert weaviate_server.counters[OBJECTS_CREATED] == 5

    weaviate_server.counters.reset()
    assert weaviate_server.counters.snapshot() == {}
    collection.data.insert(agira_object(9), uuid=uid(9))
    collection.query.fetch_object_by_id(uid(9))
    assert weaviate_server.counters.snapshot() == {
        "POST /v1/objects": 1,
        OBJECTS_CREATED: 1,
        SEARCH: 1,
    }
    assert weaviate_server.counters.total("grpc ") == 1
    assert weaviate_server.counters[OBJECTS_UPDATED] == 0


def test_reset_restores_a_clean_server(weaviate_server, collection):
    collection.data.insert(agira_object(1))
    weaviate_server.faults.fail_next(5)
    weaviate_server.faults.set_latency(1.0)
    weaviate_server.faults.down()
    weaviate_server.reset()
    assert weaviate_server.running
    assert weaviate_server.store.collections() == []
    assert weaviate_server.counters.snapshot() == {}
    assert weaviate_server.faults.latency("rest") == 0.0
    assert weaviate_server.faults.take_failure("rest", "GET /v1/meta") is None
