"""A Weaviate-compatible server for the test suite and benchmarks (REST + gRPC, in-process).

See ``docs/testing.md`` ("The Weaviate-compatible test server") for what it covers.
"""

from core.testing.weaviate_server.faults import (
    AGGREGATE,
    BATCH_DELETE,
    BATCH_OBJECTS,
    BATCH_OBJECTS_SENT,
    HEALTH_CHECK,
    OBJECTS_CREATED,
    OBJECTS_DELETED,
    OBJECTS_UPDATED,
    SEARCH,
    Counters,
    Faults,
)
from core.testing.weaviate_server.server import DEFAULT_VERSION, Auth, WeaviateTestServer
from core.testing.weaviate_server.store import Store, StoredObject, Vectorizer

__all__ = [
    "AGGREGATE",
    "BATCH_DELETE",
    "BATCH_OBJECTS",
    "BATCH_OBJECTS_SENT",
    "DEFAULT_VERSION",
    "HEALTH_CHECK",
    "OBJECTS_CREATED",
    "OBJECTS_DELETED",
    "OBJECTS_UPDATED",
    "SEARCH",
    "Auth",
    "Counters",
    "Faults",
    "Store",
    "StoredObject",
    "Vectorizer",
    "WeaviateTestServer",
]
