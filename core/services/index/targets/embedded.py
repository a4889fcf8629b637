"""The embedded index: one SQLite file with BM25 keyword search (FTS5) and
vector search (sqlite-vec), the default target. The only module that imports
`apsw` and `sqlite_vec`.

Why SQLite (figures in docs/performance.md, the choice in docs/sync.md): in WAL
mode any number of processes read while one writes, so the web server, the task
worker and the commands use the file at the same time with no owning process
and no lock held across requests; FTS5 ranks by BM25 and sqlite-vec searches
vectors in C, both with filters inside the query. Python's own `sqlite3` cannot
load extensions on many builds (pyenv, macOS); `apsw` ships its own SQLite that
can.

Tables:

* `objects`: one row per document: its id (16 bytes), the filter columns, the
  document as JSON, and a version that grows with every write of the row (the
  reconcile command's ids-and-versions walk, as for Weaviate).
* `object_text`: FTS5 over title and text, contentless (the text lives once,
  in `objects.doc`), rowid = objects.rowid.
* `object_vectors`: sqlite-vec `vec0` over the vectors quantised to int8 (a
  quarter of the bytes a search must scan), with the filter columns as
  metadata columns so a KNN query filters inside the scan; created with the
  first vector written (its dimension) and recorded in `meta`.
* `object_floats`: the exact float32 vectors. A search takes twice the
  candidates it needs from the int8 scan and ranks them by their exact cosine.

Every process keeps one connection per thread for its lifetime: nothing is
reopened per request. A write is one short transaction per batch; a reader
never waits for it (WAL), a second writer waits at most the busy timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import apsw
import sqlite_vec
from django.conf import settings

from ..documents import FIELDS

if TYPE_CHECKING:
    import numpy as np
from .base import SearchHit, SearchPage, ServerInfo, TargetUnavailable

logger = logging.getLogger("agira.index.embedded")

FILTER_FIELDS = ("type", "project_id", "org_id", "status")
VERSION_PAGE = 5000
READ_CHUNK = 500
# Unit vectors' components are far below 0.5: x * 254, clipped to int8.
INT8_SCALE = 254.0
VECTOR_LAYOUT = "int8-knn+float32-rescore"
# vec0's largest k.
MAX_CANDIDATES = 4096
# bm25() weights of the FTS columns: a word in the title counts twice.
TITLE_WEIGHT, TEXT_WEIGHT = 2.0, 1.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    rowid INTEGER PRIMARY KEY,
    uuid BLOB NOT NULL UNIQUE,
    type TEXT NOT NULL,
    project_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    embedding_model TEXT NOT NULL DEFAULT '',
    -- What the full-text and vector rows were last written from: a write that
    -- changes neither leaves them alone (a status change rewrites one row).
    text_hash TEXT NOT NULL DEFAULT '',
    vector_hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS objects_type_project ON objects (type, project_id);
CREATE INDEX IF NOT EXISTS objects_project ON objects (project_id);
-- The reconcile's walk of ids and versions reads this index alone: the rows
-- themselves hold the documents, whose overflow pages it would otherwise step
-- through to reach `version` (0.3 s against 0.04 s per 100,000 objects).
CREATE INDEX IF NOT EXISTS objects_versions ON objects (uuid, version);
CREATE VIRTUAL TABLE IF NOT EXISTS object_text USING fts5(
    title, text, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2'
);
"""


@dataclass(frozen=True)
class EmbeddedSettings:
    enabled: bool
    path: str
    busy_timeout: float
    mmap_bytes: int = 1 << 30

    def describe(self) -> str:
        return f"the embedded index {self.path}"


def embedded_settings() -> EmbeddedSettings:
    return EmbeddedSettings(
        enabled=settings.AGIRA_EMBEDDED_ENABLED,
        path=str(settings.AGIRA_EMBEDDED_PATH),
        busy_timeout=settings.AGIRA_EMBEDDED_BUSY_TIMEOUT,
        mmap_bytes=settings.AGIRA_EMBEDDED_MMAP_MB * 1024 * 1024,
    )


# English words so common that nearly every document holds them: BM25 gives
# them almost no weight, but each one makes the query rank every document that
# holds it (a sentence typed into search, or a draft compared for duplicates,
# would score the whole index). Left out unless the query holds nothing else.
STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "after",
        "again",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "for",
        "from",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


def fts_query(text: str) -> str:
    """A user's words as an FTS5 query: each word quoted (no operator or
    syntax of FTS5's own can be injected), any word may match (BM25 ranks the
    documents holding more of them, and rarer ones, first); common English
    words left out when there are others."""
    words = []
    for raw in text.split():
        word = "".join(ch for ch in raw if ch.isalnum() or ch in "_-'.")
        word = word.strip("-'.")
        if word:
            words.append(word.replace('"', ""))
    telling = [word for word in words if word.lower() not in STOP_WORDS] or words
    return " OR ".join(dict.fromkeys(f'"{word}"' for word in telling))


def _wal(conn: apsw.Connection, timeout: float, where: str) -> None:
    """Put the file in WAL mode, so that readers and the writer never wait for
    each other. While another connection puts a new file in WAL mode, this one
    can be refused "locked" at once, without the busy handler: tried again for
    up to `timeout` seconds. A file that cannot be in WAL mode (the pragma
    answers another) is used as it is, and the log says so."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            break
        except apsw.BusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
    if str(mode).lower() != "wal":
        logger.warning(
            "%s stays in %s journal mode (WAL was refused): readers and the writer "
            "will wait for each other",
            where,
            mode,
        )


@contextlib.contextmanager
def _writing(conn: apsw.Connection) -> Iterator[None]:
    """A write transaction taken at once (BEGIN IMMEDIATE): a second writer
    waits for it through the busy timeout instead of failing on upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _as_float32(vectors):
    import numpy as np

    return np.ascontiguousarray(vectors, dtype="<f4")


def _quantise(vectors):
    """Unit vectors quantised for the int8 index (its ranking is then
    corrected with the exact vectors)."""
    import numpy as np

    return np.clip(np.rint(vectors * INT8_SCALE), -127, 127).astype(np.int8)


def _int8_bytes(vector) -> bytes:
    return _quantise(_as_float32(vector)).tobytes()


def _digest(*parts: bytes) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def _filter_value(doc: dict, name: str) -> str:
    value = doc.get(name)
    return "" if value is None else str(value)


class EmbeddedTarget:
    name = "embedded"
    label = "embedded index"
    # Each thread reads through its own connection: a hybrid search runs its
    # keyword and vector halves at once.
    parallel_reads = True

    def __init__(self, config: EmbeddedSettings):
        self.config = config
        self._local = threading.local()
        self._connections: list[apsw.Connection] = []
        self._lock = threading.Lock()
        # Threads of one process open their connections one at a time: two
        # first opens at once (a hybrid search's two halves) could meet each
        # other's WAL set-up or schema transaction and fail at once as "locked".
        self._opening = threading.Lock()
        self._ready = False
        # Our own call counts (batches and objects written), for tests and benchmarks.
        self.stats: Counter[str] = Counter()

    # -- connections ----------------------------------------------------------
    def session(self):
        return nullcontext()

    def _connection(self) -> apsw.Connection:
        if not self.config.enabled:
            raise TargetUnavailable("The embedded index is switched off.", reason="disabled")
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._opening:
            conn = self._open()
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def _open(self) -> apsw.Connection:
        path = Path(self.config.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = apsw.Connection(str(path))
            conn.setbusytimeout(int(self.config.busy_timeout * 1000))
            conn.enable_load_extension(True)
            conn.load_extension(sqlite_vec.loadable_path())
            conn.enable_load_extension(False)
            _wal(conn, self.config.busy_timeout, self.config.describe())
            # The index can always be rebuilt from the database: a commit need
            # not wait for the disk (a crash loses at most the last commits,
            # which the reconcile command restores).
            conn.execute("PRAGMA synchronous=NORMAL")
            # Read the file through a memory map: a vector search scans every
            # stored vector, and mapped pages skip a copy per page (a third of
            # a search's time at 100,000 objects). The pages are the OS's page
            # cache, shared by every process, not this process's own memory.
            conn.execute(f"PRAGMA mmap_size={int(self.config.mmap_bytes)}")
            if not self._ready:
                with _writing(conn):
                    conn.execute(SCHEMA)
                self._ready = True
        except apsw.Error as exc:
            raise TargetUnavailable(
                f"Could not open {self.config.describe()}: {exc}", reason="misconfigured"
            ) from exc
        except OSError as exc:
            raise TargetUnavailable(
                f"Could not open {self.config.describe()}: {exc}", reason="misconfigured"
            ) from exc
        return conn

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except apsw.Error:
                logger.exception("Closing a connection to the embedded index failed")
        self._local = threading.local()
        self._ready = False

    def _run(self, action: str, fn):
        conn = self._connection()
        try:
            return fn(conn)
        except apsw.BusyError as exc:
            raise TargetUnavailable(
                f"{self.config.describe()} is busy: another process has been writing for more "
                f"than {self.config.busy_timeout:g} s.",
                reason="unreachable",
            ) from exc
        except (apsw.CantOpenError, apsw.IOError, apsw.CorruptError, apsw.FullError) as exc:
            raise TargetUnavailable(
                f"Could not {action} {self.config.describe()}: {exc}", reason="misconfigured"
            ) from exc

    # -- vectors ----------------------------------------------------------------
    def _meta(self, conn: apsw.Connection) -> dict[str, str]:
        return dict(conn.execute("SELECT key, value FROM meta"))

    def vector_info(self) -> tuple[int, str] | None:
        """(dimension, model key) of the stored vectors, or None before the
        first. A file of an older layout reports no model: a full reconcile
        then rebuilds its vectors."""
        meta = self._run("read from", self._meta)
        if "dimension" not in meta:
            return None
        model = meta.get("embedding_model", "") if self._current_layout(meta) else ""
        return int(meta["dimension"]), model

    @staticmethod
    def _current_layout(meta: dict[str, str]) -> bool:
        return meta.get("vector_layout") == VECTOR_LAYOUT

    def _ensure_vectors(self, conn: apsw.Connection, dimension: int, model: str) -> None:
        meta = self._meta(conn)
        if "dimension" not in meta:
            conn.execute(
                "CREATE VIRTUAL TABLE object_vectors USING vec0("
                f"embedding int8[{int(dimension)}] distance_metric=l2, "
                "type text, project_id text, org_id text, status text)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS object_floats "
                "(rowid INTEGER PRIMARY KEY, vector BLOB NOT NULL)"
            )
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("dimension", str(dimension)),
                    ("embedding_model", model),
                    ("vector_layout", VECTOR_LAYOUT),
                ],
            )
            return
        if int(meta["dimension"]) != dimension or not self._current_layout(meta):
            held = (
                f"{meta['dimension']}-dimensional vectors "
                f"({meta.get('embedding_model') or 'another model'})"
                if self._current_layout(meta)
                else "vectors in an older layout"
            )
            raise TargetUnavailable(
                f"{self.config.describe()} holds {held}; the embedder makes "
                f"{dimension}-dimensional ones ({model}). Nothing was written. Run "
                "`manage.py sync_weaviate --full --target embedded` to rebuild the vectors.",
                reason="misconfigured",
            )
        if meta.get("embedding_model") != model:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'embedding_model'", (model,))

    def reset_vectors(self) -> None:
        """Forget every stored vector (a change of model): the next writes
        create the vector tables anew with their dimension."""

        def reset(conn: apsw.Connection) -> None:
            with _writing(conn):
                conn.execute("DROP TABLE IF EXISTS object_vectors")
                conn.execute("DROP TABLE IF EXISTS object_floats")
                conn.execute(
                    "DELETE FROM meta WHERE key IN ('dimension', 'embedding_model', "
                    "'vector_layout')"
                )
                conn.execute("UPDATE objects SET embedding_model = '', vector_hash = ''")

        self._run("reset the vectors of", reset)

    def fetch_vector(self, object_uuid: uuid.UUID) -> np.ndarray | None:
        """The exact vector stored for an object, or None."""

        def read(conn: apsw.Connection):
            if not self._current_layout(self._meta(conn)):
                return None
            row = conn.execute(
                "SELECT f.vector FROM object_floats f JOIN objects o ON o.rowid = f.rowid "
                "WHERE o.uuid = ?",
                (object_uuid.bytes,),
            ).fetchone()
            import numpy as np

            return None if row is None else np.frombuffer(row[0], dtype="<f4").copy()

        return self._run("read from", read)

    # -- the target interface ---------------------------------------------------
    def ping(self) -> ServerInfo:
        def info(conn: apsw.Connection) -> ServerInfo:
            (vec_version,) = conn.execute("SELECT vec_version()").fetchone()
            return ServerInfo(
                version=f"SQLite {apsw.sqlite_lib_version()}, sqlite-vec {vec_version}", ready=True
            )

        return self._run("reach", info)

    def ensure_collection(self) -> None:
        self._run("prepare", lambda conn: None)

    def upsert_many(
        self,
        documents: list[tuple[uuid.UUID, dict]],
        *,
        vectors: np.ndarray | None = None,
        embedding_model: str = "",
    ) -> dict[int, str]:
        if not documents:
            return {}
        if vectors is not None and len(vectors) != len(documents):
            raise ValueError("one vector per document")

        model = embedding_model if vectors is not None else ""

        def begin(conn: apsw.Connection) -> tuple[int, bool]:
            """Prepare the vectors and take the batch's version."""
            if vectors is not None:
                self._ensure_vectors(conn, int(vectors.shape[1]), embedding_model)
            has_vectors = "dimension" in self._meta(conn)
            row = conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
            version = (int(row[0]) if row else 0) + 1
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version),),
            )
            return version, has_vectors

        def write(conn: apsw.Connection) -> dict[int, str]:
            try:
                with _writing(conn):  # one transaction for the batch
                    version, has_vectors = begin(conn)
                    self._write_batch(conn, documents, vectors, model, version, has_vectors)
                errors = {}
            except (apsw.ConstraintError, apsw.MismatchError, apsw.SQLError) as exc:
                # Rolled back: write the documents one by one to find the culprits.
                logger.warning("A batch was refused (%s); writing it one by one", exc)
                errors = {}
                with _writing(conn):
                    version, has_vectors = begin(conn)
                    for index, document in enumerate(documents):
                        one = None if vectors is None else vectors[index : index + 1]
                        try:
                            with conn:  # a savepoint: a refused document leaves no trace
                                self._write_batch(
                                    conn, [document], one, model, version, has_vectors
                                )
                        except (apsw.ConstraintError, apsw.MismatchError, apsw.SQLError) as err:
                            errors[index] = f"{type(err).__name__}: {err}"[:2000]
            self.stats["upsert batches"] += 1
            self.stats["upserted points"] += len(documents) - len(errors)
            return errors

        return self._run("write to", write)

    def _write_batch(self, conn, documents, vectors, model, version, has_vectors) -> None:
        """Write a batch with one statement per kind (executemany): a quarter
        of the cost of five statements per document. The same id twice in a
        batch: the last one wins."""
        last = {oid.bytes: index for index, (oid, _doc) in enumerate(documents)}
        keys = list(last)
        existing: dict[bytes, tuple] = {}
        for start in range(0, len(keys), READ_CHUNK):
            chunk = keys[start : start + READ_CHUNK]
            marks = ",".join("?" * len(chunk))
            for raw, *row in conn.execute(
                "SELECT uuid, rowid, type, project_id, org_id, status, text_hash, vector_hash "  # noqa: S608
                f"FROM objects WHERE uuid IN ({marks})",
                chunk,
            ):
                existing[bytes(raw)] = tuple(row)
        (next_rowid,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM objects").fetchone()
        # Both forms of every vector, converted once for the batch.
        exact = None if vectors is None else _as_float32(vectors)
        quantised = None if vectors is None else _quantise(exact)
        inserts, updates, text_gone, texts = [], [], [], []
        vector_new, vector_filters, vector_gone, floats = [], [], [], []
        for raw in keys:
            index = last[raw]
            doc = documents[index][1]
            filters = [_filter_value(doc, name) for name in FILTER_FIELDS]
            payload = json.dumps({k: doc.get(k) for k in FIELDS}, ensure_ascii=False)
            title, text = doc.get("title") or "", doc.get("text") or ""
            text_hash = _digest(title.encode(), b"\0", text.encode("utf-8", "surrogatepass"))
            blob = None if exact is None else exact[index].tobytes()
            vector_hash = "" if blob is None else _digest(blob)
            if raw in existing:
                rowid, *old_filters, old_text, old_vector = existing[raw]
                had_vector = bool(old_vector) and has_vectors
                updates.append((*filters, payload, version, model, text_hash, vector_hash, rowid))
                if old_text != text_hash:
                    text_gone.append((rowid,))
                    texts.append((rowid, title, text))
            else:
                next_rowid += 1
                rowid, had_vector, old_filters, old_vector = next_rowid, False, None, ""
                inserts.append(
                    (rowid, raw, *filters, payload, version, model, text_hash, vector_hash)
                )
                texts.append((rowid, title, text))
            if blob is not None:
                if not had_vector:
                    vector_new.append((rowid, quantised[index].tobytes(), *filters))
                    floats.append((rowid, blob))
                elif old_vector != vector_hash:
                    # vec0 takes no int8 value in an UPDATE: replaced (an unchanged
                    # vector, the common case of a re-sync, is left alone above).
                    vector_gone.append((rowid,))
                    vector_new.append((rowid, quantised[index].tobytes(), *filters))
                    floats.append((rowid, blob))
                elif old_filters != filters:
                    vector_filters.append((*filters, rowid))
            elif had_vector:
                vector_gone.append((rowid,))
        statements = (
            (
                "INSERT INTO objects (rowid, uuid, type, project_id, org_id, status, doc, "
                "version, embedding_model, text_hash, vector_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                inserts,
            ),
            (
                "UPDATE objects SET type = ?, project_id = ?, org_id = ?, status = ?, doc = ?, "
                "version = ?, embedding_model = ?, text_hash = ?, vector_hash = ? "
                "WHERE rowid = ?",
                updates,
            ),
            ("DELETE FROM object_text WHERE rowid = ?", text_gone),
            ("INSERT INTO object_text (rowid, title, text) VALUES (?, ?, ?)", texts),
            (
                "UPDATE object_vectors SET type = ?, project_id = ?, org_id = ?, status = ? "
                "WHERE rowid = ?",
                vector_filters,
            ),
            ("DELETE FROM object_vectors WHERE rowid = ?", vector_gone),
            ("DELETE FROM object_floats WHERE rowid = ?", vector_gone),
            (
                "INSERT INTO object_vectors (rowid, embedding, type, project_id, org_id, status) "
                "VALUES (?, vec_int8(?), ?, ?, ?, ?)",
                vector_new,
            ),
            ("INSERT OR REPLACE INTO object_floats (rowid, vector) VALUES (?, ?)", floats),
        )
        for sql, rows in statements:
            if rows:
                conn.executemany(sql, rows)

    def delete_many(self, uuids: list[uuid.UUID]) -> dict[int, str]:
        if not uuids:
            return {}

        def delete(conn: apsw.Connection) -> dict[int, str]:
            with _writing(conn):
                has_vectors = "dimension" in self._meta(conn)
                for oid in uuids:
                    row = conn.execute(
                        "DELETE FROM objects WHERE uuid = ? RETURNING rowid", (oid.bytes,)
                    ).fetchone()
                    if row is None:
                        continue  # already gone: deleting is idempotent
                    conn.execute("DELETE FROM object_text WHERE rowid = ?", (row[0],))
                    if has_vectors:
                        conn.execute("DELETE FROM object_vectors WHERE rowid = ?", (row[0],))
                        conn.execute("DELETE FROM object_floats WHERE rowid = ?", (row[0],))
            return {}

        return self._run("delete from", delete)

    def fetch(self, object_uuid: uuid.UUID) -> dict | None:
        row = self._run(
            "read from",
            lambda conn: conn.execute(
                "SELECT doc FROM objects WHERE uuid = ?", (object_uuid.bytes,)
            ).fetchone(),
        )
        return None if row is None else json.loads(row[0])

    def exists_many(self, uuids: list[uuid.UUID]) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        for start in range(0, len(uuids), READ_CHUNK):
            chunk = [u.bytes for u in uuids[start : start + READ_CHUNK]]
            marks = ",".join("?" * len(chunk))
            rows = self._run(
                "read from",
                lambda conn, chunk=chunk, marks=marks: conn.execute(
                    f"SELECT uuid FROM objects WHERE uuid IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall(),
            )
            found.update(uuid.UUID(bytes=raw) for (raw,) in rows)
        return found

    def iter_documents(self) -> Iterator[tuple[uuid.UUID, dict]]:
        after = -1
        while True:
            rows = self._run(
                "read from",
                lambda conn, after=after: conn.execute(
                    "SELECT rowid, uuid, doc FROM objects WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (after, READ_CHUNK),
                ).fetchall(),
            )
            self.stats["documents read"] += len(rows)
            for _rowid, raw, doc in rows:
                yield uuid.UUID(bytes=raw), json.loads(doc)
            if len(rows) < READ_CHUNK:
                return
            after = rows[-1][0]

    def count(self) -> int:
        (total,) = self._run(
            "read from", lambda conn: conn.execute("SELECT count(*) FROM objects").fetchone()
        )
        return int(total)

    # -- the reconcile walk (as Weaviate's: ids and versions, documents by id) ---
    def supports_versions(self) -> bool:
        return True

    def mirror_key(self) -> str:
        return f"embedded|{Path(self.config.path).resolve()}"

    def iter_versions(self) -> Iterator[list[tuple[bytes, int | None]]]:
        after = b""
        while True:
            rows = self._run(
                "read from",
                lambda conn, after=after: conn.execute(
                    "SELECT uuid, version FROM objects WHERE uuid > ? ORDER BY uuid LIMIT ?",
                    (after, VERSION_PAGE),
                ).fetchall(),
            )
            yield [(bytes(raw), int(version)) for raw, version in rows]
            if len(rows) < VERSION_PAGE:
                return
            after = rows[-1][0]

    def fetch_versioned(self, uuids: list[bytes]) -> dict[bytes, tuple[dict, int | None]]:
        found: dict[bytes, tuple[dict, int | None]] = {}
        for start in range(0, len(uuids), READ_CHUNK):
            chunk = uuids[start : start + READ_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._run(
                "read from",
                lambda conn, chunk=chunk, marks=marks: conn.execute(
                    f"SELECT uuid, doc, version FROM objects WHERE uuid IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall(),
            )
            for raw, doc, version in rows:
                found[bytes(raw)] = (json.loads(doc), int(version))
        self.stats["documents read"] += len(found)
        return found

    # -- search -------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        filters: dict[str, str],
        limit: int,
        offset: int,
        vector: np.ndarray | None = None,
    ) -> SearchPage:
        """BM25 over title and text (`query`), or the nearest vectors (`vector`),
        with exact filters inside the query; best first."""
        where, params = [], []
        for name, value in filters.items():
            if name not in FILTER_FIELDS:
                raise ValueError(f"cannot filter on {name}")
            if isinstance(value, (list, tuple, set, frozenset)):
                # Any of these values (an empty list matches nothing).
                values = sorted(str(v) for v in value)
                where.append(f"{name} IN ({','.join('?' * len(values))})" if values else "0")
                params.extend(values)
            elif value:
                where.append(f"{name} = ?")
                params.append(str(value))
        if vector is not None:
            return self._vector_search(vector, where, params, limit, offset)
        match = fts_query(query)
        if not match:
            return SearchPage(hits=[], total=0, has_next=False)
        conditions = "".join(f" AND o.{clause}" for clause in where)
        # Only our own column names and numbers are put into the text.
        sql = (
            f"SELECT o.doc, bm25(object_text, {TITLE_WEIGHT}, {TEXT_WEIGHT}) AS rank "  # noqa: S608
            "FROM object_text JOIN objects o ON o.rowid = object_text.rowid "
            f"WHERE object_text MATCH ?{conditions} ORDER BY rank LIMIT ? OFFSET ?"
        )
        rows = self._run(
            "search",
            lambda conn: conn.execute(sql, (match, *params, limit + 1, offset)).fetchall(),
        )
        hits = [SearchHit(document=json.loads(doc), score=-rank) for doc, rank in rows[:limit]]
        return SearchPage(hits=hits, total=None, has_next=len(rows) > limit)

    def _vector_search(self, vector, where, params, limit, offset) -> SearchPage:
        """The nearest vectors by cosine, filters inside the scan: twice the
        candidates needed from the int8 index, ranked by their exact float32
        vectors, then the page's documents."""
        import numpy as np

        conditions = "".join(f" AND v.{clause}" for clause in where)
        wanted = offset + limit + 1
        k = min(MAX_CANDIDATES, max(2 * wanted, wanted + 20))
        query = np.asarray(vector, dtype=np.float32)
        query = query / max(float(np.linalg.norm(query)), 1e-12)

        def run(conn: apsw.Connection):
            meta = self._meta(conn)
            if "dimension" not in meta or not self._current_layout(meta):
                return []
            if int(meta["dimension"]) != len(query):
                raise TargetUnavailable(
                    f"{self.config.describe()} holds {meta['dimension']}-dimensional vectors; "
                    f"the query has {len(query)}. Run `manage.py sync_weaviate --full`.",
                    reason="misconfigured",
                )
            sql = (
                "SELECT v.rowid, f.vector FROM object_vectors v "  # noqa: S608 - our columns
                "JOIN object_floats f ON f.rowid = v.rowid "
                f"WHERE v.embedding MATCH vec_int8(?) AND k = ?{conditions}"
            )
            candidates = conn.execute(sql, (_int8_bytes(query), k, *params)).fetchall()
            if not candidates:
                return []
            matrix = np.frombuffer(b"".join(blob for _r, blob in candidates), dtype="<f4")
            scores = matrix.reshape(len(candidates), -1) @ query
            order = np.argsort(-scores, kind="stable")[offset : offset + limit + 1]
            page = [(candidates[i][0], float(scores[i])) for i in order]
            marks = ",".join("?" * len(page))
            docs = dict(
                conn.execute(
                    f"SELECT rowid, doc FROM objects WHERE rowid IN ({marks})",  # noqa: S608
                    [rowid for rowid, _score in page],
                )
            )
            return [(docs[rowid], score) for rowid, score in page if rowid in docs]

        rows = self._run("search", run)
        hits = [SearchHit(document=json.loads(doc), score=score) for doc, score in rows[:limit]]
        return SearchPage(hits=hits, total=None, has_next=len(rows) > limit)


# -- one target per process and configuration ----------------------------------
_current: EmbeddedTarget | None = None
_current_lock = threading.Lock()


def embedded_target(config: EmbeddedSettings | None = None) -> EmbeddedTarget:
    global _current
    config = config or embedded_settings()
    with _current_lock:
        if _current is not None and _current.config == config:
            return _current
        old, _current = _current, EmbeddedTarget(config)
    if old is not None:
        old.close()
    return _current


def close_embedded() -> None:
    global _current
    with _current_lock:
        old, _current = _current, None
    if old is not None:
        old.close()
