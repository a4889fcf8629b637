"""Benchmark of the Weaviate-compatible test server (loopback only, bounded, stops itself).

    .venv/bin/python bench/bench_weaviate_server.py [--objects 20000] [--requests 2000]
                                                    [--mode both|in-process|subprocess]

Prints, for the server running in this process (as in the test suite, sharing the GIL
with the client) and in a subprocess (``python -m core.testing.weaviate_server``):

- BatchObjects throughput in objects/s through the real client's ``batch.fixed_size()``
  and ``insert_many()``, and server-side only (pre-serialized requests on a raw stub),
  each compared with the 10,000 objects/s goal;
- p50/p90/p99 latency of ``GET /v1/meta`` and of ``GET /v1/objects/{class}/{id}`` over one
  keep-alive httpx session, and of a gRPC fetch by id (raw stub and the client's
  ``fetch_object_by_id``);
- baselines measured in the same run on the same machine: a trivial keep-alive HTTP
  server that answers ``{}`` and a trivial gRPC echo, so the figures read as ratios.

Nothing here asserts on time; it only reports.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import grpc  # noqa: E402
import httpx  # noqa: E402
import weaviate  # noqa: E402
from weaviate.classes.config import Configure, DataType, Property  # noqa: E402
from weaviate.classes.data import DataObject  # noqa: E402
from weaviate.collections.batch.grpc_batch import _BatchGRPC  # noqa: E402
from weaviate.collections.classes.batch import _BatchObject  # noqa: E402
from weaviate.proto.v1 import base_pb2, batch_pb2, search_get_pb2, weaviate_pb2_grpc  # noqa: E402
from weaviate.util import _ServerVersion  # noqa: E402

from core.testing.weaviate_server import WeaviateTestServer  # noqa: E402

GOAL_OBJECTS_PER_S = 10_000
COLLECTION = "BenchObject"
TEXT_FIELDS = (
    *("object_id", "type", "title", "text", "status", "project_id", "org_id"),
    *("parent_object_id", "url", "source_system", "external_key", "mime_type", "sha256"),
)
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def agira_props(i: int) -> dict[str, Any]:
    props: dict[str, Any] = {name: f"{name} value {i}" for name in TEXT_FIELDS}
    props["text"] = f"Body of item {i}, a few words long like a real description would be."
    props["size_bytes"] = i
    props["created_at"] = T0 + dt.timedelta(seconds=i)
    props["updated_at"] = T0 + dt.timedelta(seconds=i, milliseconds=500)
    return props


def create_collection(client: Any) -> Any:
    if client.collections.exists(COLLECTION):
        client.collections.delete(COLLECTION)
    return client.collections.create(
        COLLECTION,
        properties=[
            *(Property(name=n, data_type=DataType.TEXT) for n in TEXT_FIELDS),
            Property(name="size_bytes", data_type=DataType.INT),
            Property(name="created_at", data_type=DataType.DATE),
            Property(name="updated_at", data_type=DataType.DATE),
        ],
        vector_config=Configure.Vectors.self_provided(),
    )


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), qs[89], qs[98]


def time_calls(fn: Callable[[], Any], n: int, warmup: int = 100) -> tuple[float, float, float]:
    for _ in range(min(warmup, n)):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def fmt_ms(p: tuple[float, float, float]) -> str:
    return f"p50 {p[0] * 1e3:6.3f} ms   p90 {p[1] * 1e3:6.3f} ms   p99 {p[2] * 1e3:6.3f} ms"


# -- baselines --------------------------------------------------------------------------


@contextmanager
def echo_http_server() -> Iterator[int]:
    """The least an HTTP/1.1 keep-alive server can do: one fixed reply per request."""
    listener = socket.create_server(("127.0.0.1", 0))
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
    conns: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                while f.readline() not in (b"\r\n", b""):
                    pass
                conn.sendall(reply)
        except OSError:
            return
        finally:
            f.close()
            conn.close()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conns.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        thread.join(timeout=5)


@contextmanager
def echo_grpc_server() -> Iterator[int]:
    executor = ThreadPoolExecutor(max_workers=4)
    server = grpc.server(executor)
    handler = grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None).wait()
        executor.shutdown(wait=True)


def client_encoding_rate(objects: int) -> float:
    """Objects/s the client's own batch encoder manages with no server at all: the
    ceiling for any figure measured through the client."""
    start = time.perf_counter()
    batch_requests(objects, 1000)
    return objects / (time.perf_counter() - start)


def baselines(requests: int) -> dict[str, tuple[float, float, float]]:
    out = {}
    with echo_http_server() as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        out["http echo"] = time_calls(lambda: http.get("/"), requests)
    with echo_grpc_server() as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        echo = channel.unary_unary("/bench.Echo/Echo")
        payload = b"x" * 64
        out["grpc echo"] = time_calls(lambda: echo(payload, timeout=10), requests)
    return out


# -- the server under test ------------------------------------------------------------


@contextmanager
def in_process() -> Iterator[tuple[str, int, int]]:
    with WeaviateTestServer() as server:
        yield server.host, server.http_port, server.grpc_port


@contextmanager
def in_subprocess() -> Iterator[tuple[str, int, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.testing.weaviate_server"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"http_port=(\d+) grpc_port=(\d+)", proc.stdout.readline())
        if not match:
            raise RuntimeError("the test server did not start")
        yield "127.0.0.1", int(match[1]), int(match[2])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def batch_requests(n: int, size: int) -> list[bytes]:
    """Serialized BatchObjectsRequests built with the client's own encoder."""
    encoder = _BatchGRPC(_ServerVersion.from_string("1.36.2"), None, None)
    out = []
    for start in range(0, n, size):
        objs = [
            _BatchObject(
                collection=COLLECTION,
                vector=None,
                uuid=str(uuid.uuid4()),
                properties=agira_props(i),
                tenant=None,
                references=None,
                index=i - start,
            )
            for i in range(start, min(start + size, n))
        ]
        out.append(
            batch_pb2.BatchObjectsRequest(objects=encoder.grpc_objects(objs)).SerializeToString()
        )
    return out


def measure(addr: tuple[str, int, int], objects: int, requests: int) -> dict[str, Any]:
    host, http_port, grpc_port = addr
    results: dict[str, Any] = {}
    client = weaviate.connect_to_custom(
        http_host=host,
        http_port=http_port,
        http_secure=False,
        grpc_host=host,
        grpc_port=grpc_port,
        grpc_secure=False,
        skip_init_checks=True,
    )
    try:
        # 1. BatchObjects through the client's batch (what a sync drain does)
        collection = create_collection(client)
        data = [agira_props(i) for i in range(objects)]
        start = time.perf_counter()
        with collection.batch.fixed_size(batch_size=1000, concurrent_requests=2) as batch:
            for props in data:
                batch.add_object(properties=props)
        elapsed = time.perf_counter() - start
        failed = len(collection.batch.failed_objects)
        results["batch.fixed_size(1000)"] = (objects / elapsed, failed)

        collection = create_collection(client)
        start = time.perf_counter()
        errors = 0
        for chunk in range(0, objects, 1000):
            res = collection.data.insert_many(
                [DataObject(properties=p) for p in data[chunk : chunk + 1000]]
            )
            errors += len(res.errors)
        results["insert_many(1000)"] = (objects / (time.perf_counter() - start), errors)

        # 2. server side only: pre-serialized requests on a raw stub
        collection = create_collection(client)
        payloads = batch_requests(objects, 1000)
        with grpc.insecure_channel(
            f"{host}:{grpc_port}",
            options=[("grpc.max_send_message_length", 104858000)],
        ) as channel:
            send = channel.unary_unary(
                "/weaviate.v1.Weaviate/BatchObjects",
                response_deserializer=batch_pb2.BatchObjectsReply.FromString,
            )
            start = time.perf_counter()
            errors = sum(len(send(p, timeout=60).errors) for p in payloads)
            results["raw BatchObjects (server only)"] = (
                objects / (time.perf_counter() - start),
                errors,
            )

            # 3. latency: gRPC fetch by id on the raw stub
            some_id = str(collection.query.fetch_objects(limit=1).objects[0].uuid)
            stub = weaviate_pb2_grpc.WeaviateStub(channel)
            request = search_get_pb2.SearchRequest(
                collection=COLLECTION,
                limit=1,
                uses_123_api=True,
                uses_125_api=True,
                uses_127_api=True,
                filters=base_pb2.Filters(
                    operator=base_pb2.Filters.OPERATOR_EQUAL,
                    value_text=some_id,
                    target=base_pb2.FilterTarget(property="_id"),
                ),
                metadata=search_get_pb2.MetadataRequest(
                    uuid=True, creation_time_unix=True, last_update_time_unix=True
                ),
            )
            results["grpc Search by id (raw stub)"] = time_calls(
                lambda: stub.Search(request, timeout=10), requests
            )
        results["fetch_object_by_id (client)"] = time_calls(
            lambda: collection.query.fetch_object_by_id(some_id), requests
        )

        # 4. latency: REST over one keep-alive session
        with httpx.Client(base_url=f"http://{host}:{http_port}") as http:
            results["GET /v1/meta"] = time_calls(lambda: http.get("/v1/meta"), requests)
            path = f"/v1/objects/{COLLECTION}/{some_id}"
            results["GET /v1/objects/{class}/{id}"] = time_calls(lambda: http.get(path), requests)
        client.collections.delete(COLLECTION)
    finally:
        client.close()
    return results


def report(title: str, res: dict[str, Any], base: dict[str, tuple[float, float, float]]) -> None:
    print(f"\n== {title}")
    print("  throughput (objects/s; ratio to the 10,000 objects/s goal; failed objects)")
    for name in ("batch.fixed_size(1000)", "insert_many(1000)", "raw BatchObjects (server only)"):
        rate, failed = res[name]
        print(
            f"    {name:34s} {rate:9,.0f}/s   x{rate / GOAL_OBJECTS_PER_S:4.2f}   failed {failed}"
        )
    print("  latency (ratio of p50 to the same-run echo baseline)")
    for name, base_name in (
        ("GET /v1/meta", "http echo"),
        ("GET /v1/objects/{class}/{id}", "http echo"),
        ("grpc Search by id (raw stub)", "grpc echo"),
        ("fetch_object_by_id (client)", "grpc echo"),
    ):
        p = res[name]
        print(f"    {name:34s} {fmt_ms(p)}   x{p[0] / base[base_name][0]:4.2f} {base_name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--mode", choices=("both", "in-process", "subprocess"), default="both")
    args = parser.parse_args()

    print(
        f"Weaviate test server benchmark: {args.objects} objects, {args.requests} timed "
        f"requests per latency figure, python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, weaviate-client {weaviate.__version__}, grpcio "
        f"{grpc.__version__}"
    )
    base = baselines(args.requests)
    encode = client_encoding_rate(args.objects)
    print("\n== baselines (same run: trivial servers on loopback, the client alone)")
    for name, p in base.items():
        print(f"    {name:34s} {fmt_ms(p)}")
    print(
        f"    {'client encoding only (no server)':34s} {encode:9,.0f}/s   "
        f"x{encode / GOAL_OBJECTS_PER_S:4.2f}   the ceiling of any figure through the client"
    )
    if args.mode in ("both", "in-process"):
        with in_process() as addr:
            res = measure(addr, args.objects, args.requests)
        report("server in this process (as in the test suite)", res, base)
    if args.mode in ("both", "subprocess"):
        with in_subprocess() as addr:
            res = measure(addr, args.objects, args.requests)
        report("server in a subprocess (python -m core.testing.weaviate_server)", res, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
