"""Starting, stopping and serving: clean shutdown, fixed ports, the command line."""

from __future__ import annotations

import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
import weaviate
from weaviate.classes.init import Auth
from weaviate.proto.v1 import health_weaviate_pb2, search_get_pb2, weaviate_pb2_grpc

from core.testing.weaviate_server import WeaviateTestServer
from core.testing.weaviate_server.pytest_plugin import connect
from core.testing.weaviate_server.rest import HttpServer
from core.tests.testing import COLLECTION, agira_object, create_agira_collection

REPO_ROOT = Path(__file__).resolve().parents[3]


def _threads_of(server: WeaviateTestServer) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(server.thread_prefix)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_stop_closes_both_ports_and_joins_every_thread():
    server = WeaviateTestServer().start()
    client = connect(server)
    try:
        collection = create_agira_collection(client)
        with collection.batch.fixed_size(batch_size=10) as batch:
            for i in range(30):
                batch.add_object(properties=agira_object(i))
        assert server.store.count(COLLECTION) == 30
        threads = _threads_of(server)
        assert any(name.endswith("http-conn") for name in threads)
        assert any(name.endswith("grpc-serve") for name in threads)  # grpc's own poller
    finally:
        client.close()
        server.stop()
    assert _threads_of(server) == []
    assert _refused(server.http_port)
    assert _refused(server.grpc_port)
    server.stop()  # stopping twice is harmless


def test_a_start_stop_cycle_leaves_no_thread_at_all():
    # Raw HTTP and gRPC only: the weaviate client keeps an idle executor of its own.
    before = set(threading.enumerate())
    server = WeaviateTestServer().start()
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/v1/schema", json={"class": "Thing"}).status_code == 200
        assert http.post("/v1/objects", json={"class": "Thing"}).status_code == 200
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = weaviate_pb2_grpc.WeaviateStub(channel)
        reply = stub.Search(search_get_pb2.SearchRequest(collection="Thing"), timeout=5)
        assert len(reply.results) == 1
    server.down()
    server.up()
    server.stop()
    assert set(threading.enumerate()) - before == set()


def test_stop_while_a_request_sleeps_on_injected_latency():
    server = WeaviateTestServer().start()
    server.faults.set_latency(30)
    done = threading.Event()

    def slow_call() -> None:
        with socket.create_connection(("127.0.0.1", server.http_port)) as sock:
            sock.sendall(b"GET /v1/meta HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(1024)
        done.set()

    caller = threading.Thread(target=slow_call)
    caller.start()
    for _ in range(1000):  # at most ~10 s for the request to arrive
        if server.counters["GET /v1/meta"]:
            break
        done.wait(0.01)
    assert server.counters["GET /v1/meta"] == 1
    server.stop()  # must not wait out the 30 seconds
    caller.join(timeout=10)
    assert done.is_set()
    assert _threads_of(server) == []


def test_stop_joins_a_connection_thread_that_has_not_exited_yet(monkeypatch):
    # A connection thread that is done with its socket is still alive until it returns.
    # On a loaded machine it can be descheduled right there; stop() must still join it.
    serve_connection = HttpServer._serve_connection

    def slow_to_exit(self: HttpServer, conn: socket.socket) -> None:
        serve_connection(self, conn)
        time.sleep(0.3)

    monkeypatch.setattr(HttpServer, "_serve_connection", slow_to_exit)
    server = WeaviateTestServer().start()
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/v1/meta").status_code == 200
    # The client has hung up: the connection thread is on its way out (or sleeping).
    server.stop()
    assert _threads_of(server) == []


def test_no_latency_sleep_starts_while_the_server_is_down():
    # A request read just as stop() or down() runs must not start a sleep that nothing
    # wakes any more (the shutdown would wait it out, or leave the thread behind).
    server = WeaviateTestServer().start()
    try:
        server.faults.set_latency(30)
        server.down()
        started = time.monotonic()
        assert server.faults.delay("rest") is False  # cut short at once: dropped
        assert server.faults.delay("grpc") is False
        assert time.monotonic() - started < 10
        server.faults.clear()  # back up, latency off
        server.faults.set_latency(0.2)
        started = time.monotonic()
        assert server.faults.delay("rest") is True  # sleeps again once up
        assert time.monotonic() - started >= 0.2
    finally:
        server.stop()


def test_a_request_arriving_as_stop_begins_is_dropped_not_slept_on(monkeypatch):
    # stop() wakes the requests sleeping on latency, then shuts the HTTP side. A request
    # read in between (here: forced into exactly that gap) must not start a new 30 s sleep.
    server = WeaviateTestServer().start()
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=20)
    request = b"GET /v1/meta HTTP/1.1\r\nHost: x\r\n\r\n"
    sock.sendall(request)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # a keep-alive connection
    server.faults.set_latency(30)
    http_stop = HttpServer.stop

    def request_then_stop(self: HttpServer) -> None:
        sock.sendall(request)
        for _ in range(1000):  # at most ~10 s for it to reach the server
            if server.counters["GET /v1/meta"] == 2:
                break
            time.sleep(0.01)
        time.sleep(0.05)  # and for its handler to get to the latency
        http_stop(self)

    monkeypatch.setattr(HttpServer, "stop", request_then_stop)
    with sock:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5  # the injected 30 s were not waited out
        assert server.counters["GET /v1/meta"] == 2
        assert sock.recv(1024) == b""  # dropped unanswered
    assert _threads_of(server) == []


def test_fixed_ports_and_two_servers_side_by_side():
    http_port, grpc_port = _free_port(), _free_port()
    with (
        WeaviateTestServer(http_port=http_port, grpc_port=grpc_port) as first,
        WeaviateTestServer() as second,
    ):
        assert (first.http_port, first.grpc_port) == (http_port, grpc_port)
        assert {second.http_port, second.grpc_port}.isdisjoint({http_port, grpc_port})
        first.store.put("Thing", "00000000-0000-0000-0000-000000000001", {"n": 1})
        assert second.store.count() == 0


def test_only_loopback_addresses_are_accepted():
    with pytest.raises(ValueError, match="loopback"):
        WeaviateTestServer(host="0.0.0.0")  # noqa: S104 (the point: it is refused)


def test_grpc_health_check_with_the_clients_own_messages(weaviate_server):
    with grpc.insecure_channel(f"127.0.0.1:{weaviate_server.grpc_port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_weaviate_pb2.WeaviateHealthCheckRequest.SerializeToString,
            response_deserializer=health_weaviate_pb2.WeaviateHealthCheckResponse.FromString,
        )
        reply = check(health_weaviate_pb2.WeaviateHealthCheckRequest(), timeout=5)
    assert reply.status == health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING


def test_command_line_entry_point():
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.testing.weaviate_server", "--api-key", "k1"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # Bounded wait for the "listening" line, so a broken start fails instead of hanging.
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the server printed nothing within 30 s"
        line = proc.stdout.readline()
        match = re.search(r"http_port=(\d+) grpc_port=(\d+)", line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None else "")
        http_port, grpc_port = int(match[1]), int(match[2])
        client = weaviate.connect_to_custom(
            http_host="127.0.0.1",
            http_port=http_port,
            http_secure=False,
            grpc_host="127.0.0.1",
            grpc_port=grpc_port,
            grpc_secure=False,
            auth_credentials=Auth.api_key("k1"),
            skip_init_checks=True,
        )
        try:
            collection = client.collections.create("Cli")
            collection.data.insert_many([{"title": "one"}, {"title": "two"}])
            assert collection.aggregate.over_all(total_count=True).total_count == 2
        finally:
            client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in out
