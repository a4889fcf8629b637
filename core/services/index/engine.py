"""The sync engine: record changes in the outbox, drain them into the targets.

The flow, in short:

1. A save or delete inserts one `SyncOutbox` row in the same transaction
   (`record_change`). A rollback takes it away with the change.
2. After commit a drain is scheduled, once per transaction: run in this
   process (immediate mode) or enqueued as a task (queued mode).
3. The drain folds outbox rows into one `SyncRecord` per object and active
   target (many changes of one object become one pending record), then, per
   target, leases the due records in batches, loads their objects in one
   query per type, skips those whose content hash is unchanged since the last
   successful write, writes the rest in one batch call and deletes in another.
4. A per-object error backs that record off exponentially (with jitter) up to
   `AGIRA_SYNC_MAX_ATTEMPTS`, then leaves it `failed` with its error. A target
   that cannot be used at all (down, wrong key) counts no attempts: its records
   stay pending and the next drain after recovery writes them.

A record is only marked synced if no newer change arrived while its write was
in flight (the record's `version` is the id of the newest outbox row folded in).
"""

import atexit
import copy
import dataclasses
import logging
import os
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from core.models import (
    ExternalIssueMapping,
    SyncOperation,
    SyncOutbox,
    SyncRecord,
    SyncState,
    SyncTargetStatus,
)
from core.services.runlock import HOST

from . import config
from .documents import (
    OBJECT_TYPES,
    content_hash,
    embedding_text,
    get_weaviate_type,
    normalise,
    object_uuid,
)
from .embeddings import EmbedderUnavailable, current_embedder
from .targets.base import Target, TargetUnavailable
from .targets.neo4j import neo4j_settings  # the driver itself is imported by the target

logger = logging.getLogger("agira.index")

MARK_CHUNK = 2000


# -- which targets are active ---------------------------------------------------
def active_targets() -> list[Target]:
    """The targets changes go to now, the primary one first.

    Weaviate when it is enabled in the admin (or the environment) is the
    primary; the embedded index (on by default, `AGIRA_EMBEDDED_ENABLED`) is
    the primary otherwise; then a Qdrant server (`AGIRA_QDRANT_ENABLED`), and
    last the graphs, which hold no vectors and answer no search: Neo4j when it
    is enabled in the admin (or the environment), and the embedded graph
    (`AGIRA_GRAPH_ENABLED`, on by default). Several can be active: each keeps its own
    records, retries and failures.
    """
    targets: list[Target] = []
    weaviate_config = config.weaviate_settings()
    if weaviate_config.enabled:
        from .targets.weaviate import weaviate_target

        targets.append(weaviate_target(weaviate_config))
    # Each client library is imported only when its target is on (qdrant-client
    # alone costs a command half a second of start-up).
    if settings.AGIRA_EMBEDDED_ENABLED:
        from .targets.embedded import embedded_target

        targets.append(embedded_target())
    if settings.AGIRA_QDRANT_ENABLED:
        from .targets.qdrant import qdrant_settings, qdrant_target

        targets.append(qdrant_target(qdrant_settings()))
    if neo4j_settings().enabled:
        from .targets.neo4j import neo4j_target

        targets.append(neo4j_target())
    if settings.AGIRA_GRAPH_ENABLED:
        from .targets.graph import embedded_graph_target

        targets.append(embedded_graph_target())
    return targets


def graph_target() -> Target | None:
    """The graph the Links view reads: Neo4j when it is enabled, else the
    embedded graph when it is on, else none."""
    if neo4j_settings().enabled:
        from .targets.neo4j import neo4j_target

        return neo4j_target()
    if settings.AGIRA_GRAPH_ENABLED:
        from .targets.graph import embedded_graph_target

        return embedded_graph_target()
    return None


def index_targets() -> list[Target]:
    """The active targets that answer searches (the graph does not), the
    primary one first."""
    return [t for t in active_targets() if getattr(t, "searchable", True)]


# -- recording -------------------------------------------------------------------
def record_change(instance: Model, *, operation: str, created: bool = False) -> bool:
    """Put a change of `instance` in the outbox; called by the signals.

    `operation` is "upsert" or "delete"; the switches decide whether the change
    is recorded at all. Returns whether it was.
    """
    object_type = get_weaviate_type(instance)
    if object_type is None or not config.sync_enabled() or not config.type_enabled(object_type):
        return False
    kind = "delete" if operation == SyncOperation.DELETE else "create" if created else "update"
    if not config.operation_enabled(kind):
        return False
    _insert_change(object_type, str(instance.pk), operation)
    schedule_drain()
    return True


# The one statement a save pays for the sync, as plain SQL: the ORM's create()
# (a model instance, its signals, the compiler) would cost more than the insert.
_OUTBOX_SQL = f"""
    INSERT INTO {SyncOutbox._meta.db_table} (object_type, object_id, operation, created_at)
    VALUES (%s, %s, %s, %s)
"""  # noqa: S608 - the table name is ours


def _insert_change(object_type: str, object_id: str, operation: str) -> None:
    at = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_OUTBOX_SQL, (object_type, object_id, operation, at))


def mark_for_sync(
    queryset: QuerySet, *, operation: str = SyncOperation.UPSERT, object_type: str | None = None
) -> int:
    """Record every row of `queryset` as changed.

    For writes that bypass signals: `QuerySet.update()`, `bulk_create()`, raw
    SQL. Call it in the same transaction as the write::

        with transaction.atomic():
            Item.objects.filter(project=p).update(status=ItemStatus.CLOSED)
            mark_for_sync(Item.objects.filter(project=p))

    Ids are read in chunks, never as model instances. Returns how many rows
    were recorded.
    """
    model = queryset.model
    if object_type is None:
        if issubclass(model, ExternalIssueMapping):
            # One queryset can hold both issues and PRs: two index types.
            return sum(
                mark_for_sync(queryset.filter(kind=kind), operation=operation, object_type=name)
                for kind, name in (("issue", "github_issue"), ("pr", "github_pr"))
            )
        object_type = get_weaviate_type(model())
    if object_type is None or not config.sync_enabled() or not config.type_enabled(object_type):
        return 0
    total = 0
    batch: list[SyncOutbox] = []
    for pk in queryset.order_by().values_list("pk", flat=True).iterator(chunk_size=MARK_CHUNK):
        batch.append(SyncOutbox(object_type=object_type, object_id=str(pk), operation=operation))
        if len(batch) >= MARK_CHUNK:
            SyncOutbox.objects.bulk_create(batch)
            total += len(batch)
            batch = []
    if batch:
        SyncOutbox.objects.bulk_create(batch)
        total += len(batch)
    if total:
        schedule_drain()
    return total


def _drain_after_commit() -> None:
    if config.immediate_mode():
        try:
            drain(automatic=True)
        except Exception:
            # Never let the index break the request that saved: the change is
            # safe in the outbox and the next drain takes it.
            logger.exception("Draining the sync outbox failed; the changes wait in the outbox")
    else:
        try:
            _enqueue_drain()
        except Exception:
            logger.exception("Could not enqueue the sync drain; the changes wait in the outbox")


# A queued drain is deferred by this much, and every commit in that window
# relies on it instead of enqueueing its own: one task row per window and
# process instead of one per save. The drain task enqueues itself again if it
# finds new outbox rows it was not started for.
DRAIN_COALESCE = timedelta(milliseconds=250)
_enqueue_lock = threading.Lock()
_pending_drain_at = None


def _enqueue_drain() -> None:
    global _pending_drain_at
    from .tasks import drain_outbox

    if not drain_outbox.get_backend().supports_defer:
        # The inline backend (development without a worker): the drain runs
        # in this process, but never in the request that saved (importing an
        # index client or loading the model must not slow a save).
        if settings.AGIRA_SYNC_INLINE:
            drain_outbox.enqueue()  # runs now, in this thread (tests, scripts)
        else:
            _background.kick()
        return
    now = timezone.now()
    with _enqueue_lock:
        if _pending_drain_at is not None and now < _pending_drain_at:
            return  # that task starts after this commit, and sees its row
        _pending_drain_at = run_after = now + DRAIN_COALESCE
    if _drain_waiting_in_queue():
        return  # another process's drain has not started: it sees this commit's row
    try:
        drain_outbox.using(run_after=run_after).enqueue()
    except Exception:
        with _enqueue_lock:
            _pending_drain_at = None
        raise


def _drain_waiting_in_queue() -> bool:
    """Whether the database queue holds a drain that has not started yet (from
    any process): one is enough, it folds every change committed before it
    starts. A running drain does not count, it may have folded already."""
    try:
        from django_tasks.base import TaskResultStatus
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # another queue: each process coalesces its own saves
        return False
    from .tasks import drain_outbox

    backend = drain_outbox.get_backend()
    if type(backend).__module__.split(".")[0] != "django_tasks_db":
        return False
    return DBTaskResult.objects.filter(
        task_path=drain_outbox.module_path, status=TaskResultStatus.READY
    ).exists()


class _BackgroundDrain:
    """One thread per process that drains after commits, for task backends
    that run tasks inline. Kicks while it drains make it drain once more; it
    ends after a quiet while and starts again on the next kick."""

    IDLE_SECONDS = 30.0
    RETRIES = 3
    RETRY_SECONDS = 0.5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._exit_hooked = False

    def kick(self) -> None:
        with self._lock:
            self._idle.clear()
            self._wanted.set()
            if not self._exit_hooked:
                # A command or script that saved and ends: its changes are
                # drained before the process goes (the thread is a daemon).
                atexit.register(self.wait, 120.0)
                self._exit_hooked = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="agira-sync-drain", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        from django.db import connections

        from .tasks import drain_outbox

        failures = 0
        try:
            while self._wanted.wait(self.IDLE_SECONDS):
                self._wanted.clear()
                try:
                    drain_outbox.enqueue()  # the inline backend: runs here
                    failures = 0
                except Exception:
                    # The changes are safe in the outbox: try again a moment
                    # later (a locked or restarting database), a few times.
                    failures += 1
                    logger.exception("The background drain failed (%d); the changes wait", failures)
                    if failures <= self.RETRIES:
                        time.sleep(self.RETRY_SECONDS * failures)
                        self._wanted.set()
                finally:
                    connections.close_all()  # this thread's own connections
                with self._lock:
                    if not self._wanted.is_set():
                        self._idle.set()
        finally:
            with self._lock:
                self._thread = None
                self._idle.set()

    def wait(self, timeout: float = 30.0) -> bool:
        """Until the drains asked for so far have run (tests, benches)."""
        return self._idle.wait(timeout)


_background = _BackgroundDrain()


def wait_for_background_drain(timeout: float = 30.0) -> bool:
    return _background.wait(timeout)


def reset_enqueue_window() -> None:
    global _pending_drain_at
    with _enqueue_lock:
        _pending_drain_at = None


def schedule_drain() -> None:
    """Drain after the current transaction commits: once, however many changes."""
    if config.is_paused():
        return
    conn = transaction.get_connection()
    if conn.in_atomic_block and any(
        func is _drain_after_commit for _sids, func, _robust in conn.run_on_commit
    ):
        return
    transaction.on_commit(_drain_after_commit, robust=True)


# -- the circuit breaker -------------------------------------------------------------
# After a target fails as a whole, automatic drains in this process leave it
# alone for a while (1 s, 2 s, 4 s ... up to a minute) instead of making every
# save wait on a dead server. Explicit drains (commands, buttons) always try.
_breaker_lock = threading.Lock()
_breaker: dict[str, tuple[float, int]] = {}  # target -> (retry at, failures)
BREAKER_MAX_SECONDS = 60.0


def _breaker_open(name: str) -> float:
    """Seconds until `name` may be tried again by an automatic drain (0: now)."""
    with _breaker_lock:
        until, _failures = _breaker.get(name, (0.0, 0))
    return max(0.0, until - time.monotonic())


def _breaker_trip(name: str) -> float:
    with _breaker_lock:
        _until, failures = _breaker.get(name, (0.0, 0))
        delay = min(BREAKER_MAX_SECONDS, float(2**failures))
        _breaker[name] = (time.monotonic() + delay, failures + 1)
    return delay


def _breaker_reset(name: str) -> None:
    with _breaker_lock:
        _breaker.pop(name, None)


def reset_breakers() -> None:
    with _breaker_lock:
        _breaker.clear()


# -- vectors ---------------------------------------------------------------------
def expected_model(target: Target) -> str:
    """The embedding model key a target's vectors come from now ("" for none):
    a synced record with another key is due for a new vector."""
    server_side = getattr(target, "server_vectorizer", None)
    if server_side:
        return server_side
    if not getattr(target, "needs_vectors", True):
        return ""
    try:
        embedder = current_embedder()
        return embedder.info.key if embedder is not None else ""
    except EmbedderUnavailable as exc:
        raise TargetUnavailable(
            f"The embedder is unavailable: {exc}", reason="misconfigured"
        ) from exc


def write_documents(
    target: Target, documents: list[tuple[uuid.UUID, dict]]
) -> tuple[dict[int, str], str]:
    """Embed (from the cache where it can) and write documents to a target.

    Returns the per-document errors and the embedding model key the vectors
    came from. A target that vectorises on its own server gets none; an
    embedder that cannot be used makes the target unavailable for now (the
    changes wait, no attempt is counted), before anything is written.
    """
    if not documents:
        return {}, ""
    server_side = getattr(target, "server_vectorizer", None)
    if server_side:
        return target.upsert_many(documents), server_side
    if not getattr(target, "needs_vectors", True):
        return target.upsert_many(documents), ""
    try:
        embedder = current_embedder()
        if embedder is None:
            return target.upsert_many(documents), ""
        # numpy is imported with the first vectors, not by every command.
        from .embeddings.cache import embed_texts

        vectors = embed_texts(embedder, [embedding_text(doc) for _oid, doc in documents])
        model = embedder.info.key
    except EmbedderUnavailable as exc:
        raise TargetUnavailable(
            f"The embedder is unavailable: {exc}", reason="misconfigured"
        ) from exc
    return target.upsert_many(documents, vectors=vectors, embedding_model=model), model


# -- draining --------------------------------------------------------------------
@dataclass
class TargetReport:
    written: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    error: str = ""
    skipped: bool = False  # left alone by the circuit breaker

    @property
    def total(self) -> int:
        return self.written + self.deleted + self.unchanged + self.failed


@dataclass
class DrainReport:
    folded: int = 0
    targets: dict[str, TargetReport] = field(default_factory=dict)
    # Seconds until a target skipped by the circuit breaker may be tried again.
    retry_after: float = 0.0

    @property
    def written(self) -> int:
        return sum(t.written for t in self.targets.values())


def drain(
    *,
    targets: list[Target] | None = None,
    max_batches: int | None = None,
    automatic: bool = False,
) -> DrainReport:
    """Fold the outbox into sync records and write what is due, in batches.

    `automatic` drains (after a commit) skip a target that failed a moment ago
    (see the circuit breaker); its changes stay pending.
    """
    targets = active_targets() if targets is None else targets
    report = DrainReport()
    report.folded = fold_outbox(target_names=[t.name for t in targets])
    # Only what is due now: a record that fails in this drain is due again
    # later (its backoff), never retried within the same drain.
    cutoff = timezone.now()
    for target in targets:
        wait = _breaker_open(target.name) if automatic else 0.0
        if wait:
            report.targets[target.name] = TargetReport(
                error="skipped: it failed a moment ago", skipped=True
            )
            report.retry_after = max(report.retry_after, wait)
            continue
        result = _drain_target(target, cutoff=cutoff, max_batches=max_batches)
        if result.error:
            report.retry_after = max(report.retry_after, _breaker_trip(target.name))
        else:
            _breaker_reset(target.name)
        report.targets[target.name] = result
    return report


FOLD_ATTEMPTS = 5


def fold_outbox(*, target_names: list[str]) -> int:
    """Move outbox rows into pending sync records, one per object and target.

    Concurrent drains fold disjoint rows (the rows are locked, and those
    another drain holds are skipped), and lock sync records in one order
    (target, type, id); a deadlock the database still reports is retried."""
    folded = 0
    while count := _retrying_deadlocks("folding the outbox", lambda: _fold_once(target_names)):
        folded += count
    return folded


def _retrying_deadlocks(what: str, fn):
    """`fn()`, again (a few times, a moment later) when the database breaks a
    deadlock by failing it: its transaction was rolled back whole."""
    for attempt in range(1, FOLD_ATTEMPTS + 1):
        try:
            return fn()
        except OperationalError as exc:
            if not _deadlock(exc) or attempt == FOLD_ATTEMPTS:
                raise
            logger.info("%s met a deadlock; trying again (%d)", what.capitalize(), attempt)
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def _deadlock(exc: Exception) -> bool:
    """A conflict the database resolved by failing this transaction: a
    PostgreSQL deadlock, or SQLite's table lock between connections sharing a
    cache (which, unlike a busy database, waits for no timeout)."""
    cause = exc.__cause__
    text = str(exc).lower()
    return (
        getattr(cause, "sqlstate", None) == "40P01"
        or "deadlock" in text
        or "database table is locked" in text
    )


def _fold_once(target_names: list[str]) -> int:
    with transaction.atomic():
        outbox = SyncOutbox.objects.order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            outbox = outbox.select_for_update(skip_locked=True)
        rows = list(
            outbox.values_list("id", "object_type", "object_id", "operation", "created_at")[
                : settings.AGIRA_SYNC_BATCH_SIZE * 4
            ]
        )
        if not rows:
            return 0
        latest: dict[tuple[str, str], tuple[int, str]] = {}
        saved: dict[tuple[str, str], object] = {}  # the oldest of the object's saves
        for row_id, object_type, object_id, operation, created_at in rows:
            latest[(object_type, object_id)] = (row_id, operation)  # last one wins
            saved.setdefault((object_type, object_id), created_at)
        now = timezone.now()
        if target_names:
            _fold_rows(
                sorted(
                    (
                        name,
                        object_type,
                        object_id,
                        operation,
                        row_id,
                        saved[(object_type, object_id)],
                    )
                    for name in target_names
                    for (object_type, object_id), (row_id, operation) in latest.items()
                ),
                now,
            )
        else:
            logger.debug("No index target is active: %d changes dropped", len(rows))
        SyncOutbox.objects.filter(id__in=[row[0] for row in rows]).delete()
        return len(rows)


def _due(target_name: str, now, cutoff) -> QuerySet:
    return SyncRecord.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=cutoff),
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        target=target_name,
        state=SyncState.PENDING,
    )


def claim_token() -> str:
    """A new lease's token: the holder's host and process, and the claim."""
    return f"{HOST[:60]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def token_holder(token: str) -> tuple[str, int] | None:
    """(host, pid) of the process that holds a lease, None if it says none."""
    host, _sep, rest = token.rpartition(":")
    host, _sep, pid = host.rpartition(":")
    if not host or not pid.isdigit() or not rest:
        return None
    return host, int(pid)


def _claim(target_name: str, cutoff) -> list[SyncRecord]:
    """Lease a batch of due records to this drain (safe against other drains)."""
    return _retrying_deadlocks("leasing a batch", lambda: _claim_once(target_name, cutoff))


def _claim_once(target_name: str, cutoff) -> list[SyncRecord]:
    token = claim_token()
    now = timezone.now()
    with transaction.atomic():
        due = _due(target_name, now, cutoff).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            # Rows another transaction holds (a fold, a completion) are left
            # for the next drain instead of waited for.
            due = due.select_for_update(skip_locked=True)
        ids = sorted(due.values_list("id", flat=True)[: settings.AGIRA_SYNC_BATCH_SIZE])
        if not ids:
            return []
        # The WHERE is checked again under the row lock: a record another
        # drain took in the meantime is not taken twice.
        _due(target_name, now, cutoff).filter(id__in=ids).update(
            claim_token=token,
            claimed_until=now + timedelta(seconds=settings.AGIRA_SYNC_LEASE_SECONDS),
        )
    return list(SyncRecord.objects.filter(id__in=ids, claim_token=token))


class _LeaseKeeper:
    """Renews the leases of the batches this process has in flight, each a
    third of `AGIRA_SYNC_LEASE_SECONDS` after it was taken or last renewed,
    from one thread that ends when none is. So leases can be short: a drain
    that dies stops renewing, and its batch is due again within one lease (at
    once, on its own host, by the worker's upkeep), while a slow batch keeps
    its lease as long as it works."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[tuple[int, ...], float]] = {}  # token -> (ids, renew at)
        self._wake = threading.Event()
        self._wake_at = 0.0
        self._thread: threading.Thread | None = None

    @staticmethod
    def _every() -> float:
        return max(settings.AGIRA_SYNC_LEASE_SECONDS / 3, 0.05)

    def hold(self, token: str, ids: list[int]) -> None:
        renew_at = time.monotonic() + self._every()
        with self._lock:
            self._held[token] = (tuple(ids), renew_at)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="agira-sync-leases", daemon=True
                )
                self._thread.start()
            elif renew_at < self._wake_at:
                self._wake.set()  # sooner than the thread means to wake

    def let_go(self, token: str) -> None:
        with self._lock:
            self._held.pop(token, None)

    def _run(self) -> None:
        from django.db import connections

        while True:
            with self._lock:
                if not self._held:
                    self._thread = None
                    return
                self._wake_at = min(at for _ids, at in self._held.values())
            self._wake.wait(max(0.0, self._wake_at - time.monotonic()))
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                ripe = {t: ids for t, (ids, at) in self._held.items() if at <= now}
            if not ripe:
                continue
            try:
                self._renew(ripe)
            except Exception:
                # A lease not renewed only lets another drain take the batch
                # too (writes are idempotent upserts); say so and go on.
                logger.exception("Renewing the leases of %d batches failed", len(ripe))
            finally:
                connections.close_all()  # this thread's own connections
            with self._lock:
                for token, ids in ripe.items():
                    if token in self._held:
                        self._held[token] = (ids, now + self._every())

    @staticmethod
    def _renew(held: dict[str, tuple[int, ...]]) -> None:
        for attempt in range(1, 4):
            until = timezone.now() + timedelta(seconds=settings.AGIRA_SYNC_LEASE_SECONDS)
            try:
                for token, ids in held.items():
                    SyncRecord.objects.filter(id__in=ids, claim_token=token).update(
                        claimed_until=until
                    )
                return
            except OperationalError:
                if attempt == 3:
                    raise
                time.sleep(0.05 * attempt)  # a locked database: a moment later


_leases = _LeaseKeeper()


def _release(records: list[SyncRecord]) -> None:
    SyncRecord.objects.filter(id__in=[r.id for r in records]).update(
        claim_token="", claimed_until=None
    )


def _set_status(target: Target, *, error: str = "", reason: str = "") -> None:
    now = timezone.now()
    values = {
        "reachable": not error,
        "last_error": error,
        "reason": reason if error else "",
        "last_checked_at": now,
    }
    if not error:
        values["last_success_at"] = now
    SyncTargetStatus.objects.update_or_create(target=target.name, defaults=values)


def backoff_delay(
    attempts: int, *, base: float | None = None, cap: float | None = None
) -> timedelta:
    """Exponential backoff with jitter: `base` seconds doubled per attempt, up to `cap`
    (the sync engine's settings unless given)."""
    base = settings.AGIRA_SYNC_BACKOFF_SECONDS if base is None else base
    cap = settings.AGIRA_SYNC_BACKOFF_MAX_SECONDS if cap is None else cap
    capped = min(base * (2 ** max(attempts - 1, 0)), cap)
    return timedelta(seconds=capped * random.uniform(0.5, 1.5))  # noqa: S311 - jitter


def _drain_target(target: Target, *, cutoff, max_batches: int | None) -> TargetReport:
    try:
        with target.session():
            return _drain_batches(target, cutoff=cutoff, max_batches=max_batches)
    except TargetUnavailable as exc:  # the session itself could not start
        _set_status(target, error=str(exc), reason=exc.reason)
        logger.warning("%s unavailable; its changes wait: %s", target.label, exc)
        return TargetReport(error=str(exc))


def _drain_batches(target: Target, *, cutoff, max_batches: int | None) -> TargetReport:
    report = TargetReport()
    batches = 0
    while max_batches is None or batches < max_batches:
        records = _claim(target.name, cutoff)
        if not records:
            break
        batches += 1
        token = records[0].claim_token
        _leases.hold(token, [r.id for r in records])
        try:
            _process(target, records, report)
        except TargetUnavailable as exc:
            _release(records)
            report.error = str(exc)
            _set_status(target, error=str(exc), reason=exc.reason)
            logger.warning("%s unavailable; %d changes wait: %s", target.label, len(records), exc)
            return report
        except Exception:
            _release(records)
            raise
        finally:
            _leases.let_go(token)
    if batches:
        _set_status(target)
    return report


@dataclass
class _Outcome:
    record: SyncRecord
    state: str
    content_hash: str = ""
    error: str = ""
    embedding_model: str = ""


def _process(target: Target, records: list[SyncRecord], report: TargetReport) -> None:
    by_type: dict[str, list[SyncRecord]] = defaultdict(list)
    for record in records:
        by_type[record.object_type].append(record)

    outcomes: list[_Outcome] = []
    upserts: list[tuple[SyncRecord, uuid.UUID, dict, str]] = []
    deletes: list[tuple[SyncRecord, uuid.UUID]] = []
    model: str | None = None  # the expected embedding model, looked up once
    for object_type, group in by_type.items():
        spec = OBJECT_TYPES.get(object_type)
        if spec is None:
            outcomes.extend(
                _Outcome(r, SyncState.FAILED, error=f"Unknown type {object_type}") for r in group
            )
            continue
        wanted = [r.object_id for r in group if r.operation == SyncOperation.UPSERT]
        instances = spec.load(wanted) if wanted else {}
        for record in group:
            oid = object_uuid(object_type, record.object_id)
            instance = instances.get(record.object_id)
            if record.operation == SyncOperation.DELETE or instance is None:
                # Deleted, or gone since the change was recorded.
                deletes.append((record, oid))
                continue
            try:
                doc = normalise(spec.serialize(instance))
            except Exception as exc:
                logger.exception("Serializing %s:%s failed", object_type, record.object_id)
                outcomes.append(_Outcome(record, SyncState.FAILED, error=f"Serializer: {exc}"))
                continue
            digest = content_hash(doc, normalised=True)
            if digest == record.content_hash and record.last_synced_at is not None:
                if model is None:
                    model = expected_model(target)
                if record.embedding_model == model:
                    outcomes.append(
                        _Outcome(
                            record, SyncState.SYNCED, content_hash=digest, embedding_model=model
                        )
                    )
                    report.unchanged += 1
                    continue
            upserts.append((record, oid, doc, digest))

    if upserts:
        errors, written_model = write_documents(
            target, [(oid, doc) for _r, oid, doc, _h in upserts]
        )
        for index, (record, _oid, _doc, digest) in enumerate(upserts):
            if index in errors:
                outcomes.append(_Outcome(record, "error", error=errors[index]))
            else:
                outcomes.append(
                    _Outcome(
                        record,
                        SyncState.SYNCED,
                        content_hash=digest,
                        embedding_model=written_model,
                    )
                )
                report.written += 1
    if deletes:
        try:
            errors = target.delete_many([oid for _r, oid in deletes])
        except TargetUnavailable:
            # What this batch already wrote is recorded as written (never left
            # pending to be sent again); the deletions wait with the target.
            _complete(target, outcomes, report)
            raise
        for index, (record, _oid) in enumerate(deletes):
            if index in errors:
                outcomes.append(_Outcome(record, "error", error=errors[index]))
            else:
                outcomes.append(_Outcome(record, SyncState.DELETED))
                report.deleted += 1
    _complete(target, outcomes, report)


def _complete(target: Target, outcomes: list[_Outcome], report: TargetReport) -> None:
    """Record a batch's outcomes. A try that meets a deadlock is rolled back
    whole and made again from copies of the records as they were claimed."""

    def attempt() -> TargetReport:
        counted = TargetReport()
        fresh = [dataclasses.replace(o, record=copy.copy(o.record)) for o in outcomes]
        _complete_once(target, fresh, counted)
        return counted

    report.failed += _retrying_deadlocks("recording a batch", attempt).failed


def _complete_once(target: Target, outcomes: list[_Outcome], report: TargetReport) -> None:
    now = timezone.now()
    with transaction.atomic():
        ids = [o.record.id for o in outcomes]
        current = dict(
            SyncRecord.objects.select_for_update()
            .filter(id__in=ids)
            .order_by("id")  # one lock order for every drain
            .values_list("id", "version")
            if connection.features.has_select_for_update
            else SyncRecord.objects.filter(id__in=ids).values_list("id", "version")
        )
        changed: list[SyncRecord] = []
        for outcome in outcomes:
            record = outcome.record
            record.claim_token, record.claimed_until = "", None
            if current.get(record.id) != record.version:
                # A newer change arrived meanwhile: the record stays pending
                # with that change. What this drain wrote is now what the index
                # holds, and the newer change is compared against it (else a
                # change back to the last recorded content would be skipped,
                # leaving this write in the index).
                held: dict = {"claim_token": "", "claimed_until": None}
                if outcome.state == SyncState.SYNCED:
                    held.update(
                        content_hash=outcome.content_hash,
                        embedding_model=outcome.embedding_model,
                        last_synced_at=now,
                    )
                elif outcome.state == SyncState.DELETED:
                    held.update(content_hash="", last_synced_at=None)
                SyncRecord.objects.filter(id=record.id).update(**held)
                continue
            if outcome.state == "error":
                record.attempts += 1
                record.last_error = outcome.error[:4000]
                if record.attempts >= settings.AGIRA_SYNC_MAX_ATTEMPTS:
                    record.state, record.next_attempt_at = SyncState.FAILED, None
                else:
                    record.next_attempt_at = now + backoff_delay(record.attempts)
                report.failed += 1
                logger.warning(
                    "%s: %s:%s failed (attempt %d): %s",
                    target.label,
                    record.object_type,
                    record.object_id,
                    record.attempts,
                    outcome.error,
                )
            elif outcome.state == SyncState.FAILED:
                record.state, record.last_error = SyncState.FAILED, outcome.error[:4000]
                record.attempts += 1
                record.next_attempt_at = record.pending_since = None
                report.failed += 1
            else:
                record.state = outcome.state
                record.content_hash = outcome.content_hash
                record.embedding_model = outcome.embedding_model
                record.last_synced_at = now
                record.attempts, record.last_error, record.next_attempt_at = 0, "", None
                if record.pending_since is not None:
                    waited = (now - record.pending_since).total_seconds()
                    record.index_latency_ms = max(0, round(waited * 1000))
                record.pending_since = None
            record.changed_at = now
            changed.append(record)
        _update_records(changed)


# The two statements every drain runs for every record are written as plain
# executemany SQL (the same on SQLite and PostgreSQL): the ORM's per-field
# value preparation would cost more than the index write itself.
_RECORD_TABLE = SyncRecord._meta.db_table
# A record already pending keeps the time of its oldest unwritten save.
_FOLD_SQL = f"""
    INSERT INTO {_RECORD_TABLE} (target, object_type, object_id, operation, state, content_hash,
        embedding_model, attempts, next_attempt_at, last_error, changed_at, version, claim_token,
        pending_since)
    VALUES (%s, %s, %s, %s, 'pending', '', '', 0, %s, '', %s, %s, '', %s)
    ON CONFLICT (target, object_type, object_id) DO UPDATE SET
        operation = excluded.operation, state = 'pending', version = excluded.version,
        attempts = 0, next_attempt_at = excluded.next_attempt_at, last_error = '',
        changed_at = excluded.changed_at,
        pending_since = CASE WHEN {_RECORD_TABLE}.state = 'pending'
            AND {_RECORD_TABLE}.pending_since IS NOT NULL
            THEN {_RECORD_TABLE}.pending_since ELSE excluded.pending_since END
"""  # noqa: S608 - the table name is ours
_COMPLETE_SQL = f"""
    UPDATE {_RECORD_TABLE} SET state = %s, content_hash = %s, embedding_model = %s,
        last_synced_at = %s, attempts = %s, last_error = %s, next_attempt_at = %s, claim_token = '',
        claimed_until = NULL, changed_at = %s, pending_since = %s, index_latency_ms = %s
    WHERE id = %s
"""  # noqa: S608 - the table name is ours


def _fold_rows(rows: list[tuple], now) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    at = adapt(now)
    with connection.cursor() as cursor:
        cursor.executemany(
            _FOLD_SQL, [(*row[:4], at, at, row[4], adapt(row[5] or now)) for row in rows]
        )


def _update_records(records: list[SyncRecord]) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            _COMPLETE_SQL,
            [
                (
                    r.state,
                    r.content_hash,
                    r.embedding_model,
                    adapt(r.last_synced_at),
                    r.attempts,
                    r.last_error,
                    adapt(r.next_attempt_at),
                    adapt(r.changed_at),
                    adapt(r.pending_since),
                    r.index_latency_ms,
                    r.id,
                )
                for r in records
            ],
        )


def record_outcomes(
    target_name: str,
    *,
    written: list[tuple[str, str, str]],
    failed: list[tuple[str, str, str]],
    embedding_model: str = "",
) -> None:
    """Record direct writes: (type, id, content hash) written with vectors of
    `embedding_model`, (type, id, error) refused. Used by pushes and by the
    reconcile command."""
    now = timezone.now()
    base = {
        "target": target_name,
        "operation": SyncOperation.UPSERT,
        "claim_token": "",
        "claimed_until": None,
        "changed_at": now,
        "pending_since": None,
    }
    common = ["operation", "state", "claim_token", "claimed_until", "changed_at", "pending_since"]
    _save_records(
        [
            SyncRecord(
                **base,
                object_type=t,
                object_id=i,
                state=SyncState.SYNCED,
                content_hash=h,
                embedding_model=embedding_model,
                last_synced_at=now,
                attempts=0,
                last_error="",
                next_attempt_at=None,
            )
            for t, i, h in written
        ],
        [
            *common,
            "content_hash",
            "embedding_model",
            "last_synced_at",
            "attempts",
            "last_error",
            "next_attempt_at",
        ],
    )
    _save_records(
        [
            SyncRecord(
                **base, object_type=t, object_id=i, state=SyncState.FAILED, last_error=e[:4000]
            )
            for t, i, e in failed
        ],
        [*common, "last_error"],
    )


def _save_records(records: list[SyncRecord], fields: list[str]) -> None:
    """Write many records in one statement per 500 (INSERT ... ON CONFLICT
    DO UPDATE): far cheaper than `bulk_update`'s CASE per field and row."""
    SyncRecord.objects.bulk_create(
        records,
        update_conflicts=True,
        unique_fields=["target", "object_type", "object_id"],
        update_fields=fields,
        batch_size=500,
    )


# -- direct writes (push buttons, sync_project) -----------------------------------
def write_now(instances: Iterable[Model], *, targets: list[Target] | None = None) -> dict:
    """Write instances to every active target now, skipping no unchanged content,
    and record the outcome. Returns {target name: TargetReport}."""
    targets = active_targets() if targets is None else targets
    docs = []
    for instance in instances:
        object_type = get_weaviate_type(instance)
        doc = normalise(OBJECT_TYPES[object_type].serialize(instance))
        docs.append((instance, object_type, object_uuid(object_type, instance.pk), doc))
    results: dict[str, TargetReport] = {}
    for target in targets:
        report = TargetReport()
        try:
            errors, model = write_documents(target, [(oid, doc) for _i, _t, oid, doc in docs])
        except TargetUnavailable as exc:
            report.error = str(exc)
            report.failed = len(docs)
            _set_status(target, error=str(exc), reason=exc.reason)
            results[target.name] = report
            continue
        _set_status(target)
        written = [
            (object_type, str(instance.pk), content_hash(doc, normalised=True))
            for index, (instance, object_type, _oid, doc) in enumerate(docs)
            if index not in errors
        ]
        failed = [
            (object_type, str(instance.pk), errors[index])
            for index, (instance, object_type, _oid, _doc) in enumerate(docs)
            if index in errors
        ]
        record_outcomes(target.name, written=written, failed=failed, embedding_model=model)
        report.written, report.failed = len(written), len(failed)
        results[target.name] = report
    return results


def delete_now(object_type: str, object_id: str, *, targets: list[Target] | None = None) -> dict:
    targets = active_targets() if targets is None else targets
    results: dict[str, TargetReport] = {}
    for target in targets:
        report = TargetReport()
        try:
            errors = target.delete_many([object_uuid(object_type, object_id)])
        except TargetUnavailable as exc:
            report.error, report.failed = str(exc), 1
            results[target.name] = report
            continue
        state = SyncState.FAILED if errors else SyncState.DELETED
        SyncRecord.objects.update_or_create(
            target=target.name,
            object_type=object_type,
            object_id=str(object_id),
            defaults={
                "state": state,
                "operation": SyncOperation.DELETE,
                "last_error": errors.get(0, ""),
            },
        )
        report.deleted, report.failed = (0, 1) if errors else (1, 0)
        results[target.name] = report
    return results
