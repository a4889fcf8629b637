"""A harness over each index target, so one behaviour test runs against each."""

import apsw
import numpy as np

from core.models import SyncRecord
from core.services.index.documents import object_uuid
from core.services.index.targets.embedded import embedded_target
from core.services.index.targets.qdrant import FolderLock, qdrant_target
from core.testing.weaviate_server.faults import BATCH_OBJECTS, BATCH_OBJECTS_SENT


class _Harness:
    name = ""
    down_message = ""

    def says_down(self, text: str) -> bool:
        """Whether `text` is this target's message for being down."""
        return self.down_message in text

    def record(self, object_type: str, object_id) -> SyncRecord:
        return SyncRecord.objects.get(
            target=self.name, object_type=object_type, object_id=str(object_id)
        )

    def vector(self, object_type: str, object_id) -> np.ndarray | None:
        """The vector the index holds for an object, as the index returns it."""
        raw = self.target.fetch_vector(object_uuid(object_type, object_id))
        return None if raw is None else np.asarray(raw, dtype=np.float32)


class WeaviateHarness(_Harness):
    """Reads the server's own store and counters."""

    name = "weaviate"
    down_message = "is not reachable"

    def says_down(self, text: str) -> bool:
        # A cached client fails its liveness probe; a process without one fails to connect.
        return "is not reachable" in text or "Could not connect to Weaviate at" in text

    def __init__(self, server):
        self.server = server

    @property
    def target(self):
        from core.services.index.targets.weaviate import weaviate_target

        return weaviate_target()

    def get(self, object_type, object_id):
        return self.server.store.get("AgiraObject", object_uuid(object_type, object_id))

    def count(self) -> int:
        return self.server.store.count("AgiraObject")

    def writes(self) -> int:
        return self.server.counters[BATCH_OBJECTS]

    def objects_written(self) -> int:
        return self.server.counters[BATCH_OBJECTS_SENT]

    def reset_counts(self) -> None:
        self.server.counters.reset()

    def remove(self, object_type, object_id) -> None:
        self.server.store.delete("AgiraObject", str(object_uuid(object_type, object_id)))

    def down(self) -> None:
        self.server.down()

    def up(self) -> None:
        self.server.up()


class QdrantHarness(_Harness):
    """Reads the embedded index through the real qdrant-client (local mode).

    "Down" is the failure the embedded index really has: another process
    holding its folder longer than the lock timeout.
    """

    name = "qdrant"
    down_message = "is busy: another process held it"

    def __init__(self, path):
        self.path = path
        self._blocker: FolderLock | None = None

    @property
    def target(self):
        return qdrant_target()

    def get(self, object_type, object_id):
        return self.target.fetch(object_uuid(object_type, object_id))

    def count(self) -> int:
        return self.target.count()

    def writes(self) -> int:
        return self.target.stats["upsert batches"]

    def objects_written(self) -> int:
        return self.target.stats["upserted points"]

    def reset_counts(self) -> None:
        self.target.stats.clear()

    def remove(self, object_type, object_id) -> None:
        self.target.delete_many([object_uuid(object_type, object_id)])

    def down(self) -> None:
        from pathlib import Path

        self._blocker = FolderLock(Path(self.path))
        assert self._blocker.acquire(timeout=1)

    def up(self) -> None:
        if self._blocker is not None:
            self._blocker.release()
            self._blocker = None


class EmbeddedHarness(_Harness):
    """Reads the embedded SQLite index through its target.

    "Down" is the failure the embedded index really has: another process
    holding a write transaction longer than the busy timeout (readers go on).
    """

    name = "embedded"
    down_message = "is busy: another process has been writing"

    def __init__(self, path):
        self.path = path
        self._blocker: apsw.Connection | None = None

    @property
    def target(self):
        return embedded_target()

    def get(self, object_type, object_id):
        return self.target.fetch(object_uuid(object_type, object_id))

    def count(self) -> int:
        return self.target.count()

    def writes(self) -> int:
        return self.target.stats["upsert batches"]

    def objects_written(self) -> int:
        return self.target.stats["upserted points"]

    def reset_counts(self) -> None:
        self.target.stats.clear()

    def remove(self, object_type, object_id) -> None:
        self.target.delete_many([object_uuid(object_type, object_id)])

    def down(self) -> None:
        self.target.ensure_collection()  # the file exists before it is held
        self._blocker = apsw.Connection(str(self.path))
        self._blocker.execute("BEGIN IMMEDIATE")

    def up(self) -> None:
        if self._blocker is not None:
            self._blocker.execute("ROLLBACK")
            self._blocker.close()
            self._blocker = None
