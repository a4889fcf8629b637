"""Reconcile: make an index target hold exactly what the database holds.

`manage.py sync_weaviate` is a thin shell around `reconcile()`. For each
target it

1. takes the target's run lock (one `ReconcileRun` row whose unique `lock`
   column holds the target's name: an atomic insert on every database; a
   holder whose process died or whose heartbeat is old is taken over),
2. drains the outbox (unless it is a dry run),
3. walks what the index really holds with its cursor (`iter_documents`) and
   writes each object's id, type, project and content hash into a temporary
   on-disk SQLite table: the comparison never holds the index in memory, so
   memory stays flat however many objects there are,
4. walks the database type by type in primary-key chunks (keyset pagination:
   `pk > last`, `LIMIT batch`), serializes and hashes each chunk, looks its ids
   up in the temporary table and writes what is missing (created) or differs
   (updated) in one batch per chunk; `full` rewrites everything,
5. deletes orphans: objects of Agira's types the walk did not see and whose
   row really is gone (checked again in the database before deleting),
6. drains again what arrived meanwhile, and records the outcome.

Every write is an upsert under a deterministic id, so a run killed half-way
leaves nothing the next run would duplicate: that run compares again and finds
what the killed run wrote unchanged.
"""

import logging
import os
import socket
import sqlite3
import tempfile
import time
import uuid
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.models import (
    ReconcileRun,
    ReconcileStatus,
    SyncOperation,
    SyncRecord,
    SyncState,
)

from .documents import OBJECT_TYPES, TYPE_NAMES, content_hash, normalise, object_uuid
from .engine import _drain_target, _set_status, active_targets, fold_outbox, record_outcomes
from .targets.base import Target, TargetUnavailable

logger = logging.getLogger("agira.index.reconcile")

ACTIONS = ("created", "updated", "unchanged", "deleted", "failed")
# Exit codes of `manage.py sync_weaviate` (documented in docs/operations.md).
EXIT_OK, EXIT_FAILED, EXIT_LOCKED, EXIT_UNAVAILABLE = 0, 1, 2, 3
HEARTBEAT_EVERY = 5.0  # seconds between heartbeats while scanning the index
LOOKUP_CHUNK = 500  # ids per SQLite IN (...) lookup

# How to keep only one project's objects, per type.
PROJECT_FILTER = {
    "item": "project_id",
    "comment": "item__project_id",
    "attachment": "item__project_id",
    "project": "pk",
    "change": "project_id",
    "node": "project_id",
    "release": "project_id",
    "github_issue": "item__project_id",
    "github_pr": "item__project_id",
}


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "AGIRA_RECONCILE_STALE_SECONDS", 300))


HOST = socket.gethostname()


# -- progress ----------------------------------------------------------------------
class Progress:
    """Told what a run does; the command shows it (a bar or log lines)."""

    def start(self, label: str, total: int | None) -> None: ...
    def advance(self, n: int) -> None: ...
    def finish(self) -> None: ...


# -- the report --------------------------------------------------------------------
def _zero() -> dict[str, int]:
    return dict.fromkeys(ACTIONS, 0)


@dataclass
class TargetResult:
    target: str
    label: str
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(_zero))
    run_id: int | None = None
    error: str = ""
    unavailable: bool = False
    locked_by: ReconcileRun | None = None
    orphans_kept: int = 0  # found, but --no-delete
    taken_over: str = ""  # the stale run this one took over, said in words
    drained: int = 0  # outbox changes written or deleted by the drains around the run
    seconds: float = 0.0

    def total(self, action: str) -> int:
        return sum(row[action] for row in self.counts.values())

    @property
    def exit_code(self) -> int:
        if self.unavailable:
            return EXIT_UNAVAILABLE
        if self.locked_by is not None:
            return EXIT_LOCKED
        if self.error or self.total("failed"):
            return EXIT_FAILED
        return EXIT_OK


@dataclass
class ReconcileReport:
    targets: list[TargetResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The most serious outcome of any target (3 > 2 > 1 > 0)."""
        return max((t.exit_code for t in self.targets), default=EXIT_OK)


class RunLocked(Exception):
    def __init__(self, holder: ReconcileRun):
        super().__init__(describe_holder(holder))
        self.holder = holder


def describe_holder(run: ReconcileRun) -> str:
    age = (timezone.now() - run.heartbeat_at).total_seconds()
    return (
        f"run #{run.pk} on {run.host or '?'} (pid {run.pid}), started "
        f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC, last heartbeat {age:.0f} s ago"
    )


# -- the lock ----------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def stale_reason(run: ReconcileRun, now=None) -> str | None:
    """Why the holder of a lock is dead, or None if it may be alive."""
    now = now or timezone.now()
    if run.host == HOST and run.pid and not _pid_alive(run.pid):
        return f"holder pid {run.pid} on {run.host} died"
    if now - run.heartbeat_at > stale_after():
        return (
            f"holder pid {run.pid} on {run.host or '?'} sent no heartbeat for "
            f"{(now - run.heartbeat_at).total_seconds():.0f} s"
        )
    return None


def claim(target_name: str, options: dict) -> tuple[ReconcileRun, str]:
    """Take the target's lock in a new run; raise RunLocked if a live run has it.

    Returns the run and, if a stale run was taken over, what happened to it.
    """
    taken_over = ""
    for _attempt in range(5):
        now = timezone.now()
        try:
            with transaction.atomic():
                run = ReconcileRun.objects.create(
                    target=target_name,
                    lock=target_name,
                    status=ReconcileStatus.IN_PROGRESS,
                    step="starting",
                    options=options,
                    started_at=now,
                    heartbeat_at=now,
                    host=HOST,
                    pid=os.getpid(),
                )
            return run, taken_over
        except IntegrityError:
            holder = ReconcileRun.objects.filter(lock=target_name).first()
            if holder is None:
                continue  # it ended meanwhile: try again
            reason = stale_reason(holder, now)
            if reason is None:
                raise RunLocked(holder) from None
            # Only one taker wins: the update matches the holder as we saw it.
            took = ReconcileRun.objects.filter(
                pk=holder.pk, lock=target_name, heartbeat_at=holder.heartbeat_at
            ).update(
                lock=None,
                status=ReconcileStatus.FAILED,
                finished_at=now,
                error=f"Stale, taken over by a new run: {reason}.",
            )
            if took:
                taken_over = f"run #{holder.pk} was stale ({reason}): marked failed, taken over"
                logger.warning("Reconcile of %s: %s", target_name, taken_over)
    holder = ReconcileRun.objects.filter(lock=target_name).first()
    if holder is not None:
        raise RunLocked(holder)
    raise RuntimeError(f"Could not take the reconcile lock of {target_name}")


def _heartbeat(run: ReconcileRun, **values) -> None:
    values["heartbeat_at"] = timezone.now()
    ReconcileRun.objects.filter(pk=run.pk).update(**values)


def _finish(run: ReconcileRun, *, status: str, error: str = "", counts=None) -> None:
    values = {
        "status": status,
        "error": error[:4000],
        "finished_at": timezone.now(),
        "heartbeat_at": timezone.now(),
        "lock": None,
    }
    if status == ReconcileStatus.COMPLETED:
        values["step"] = "done"  # a failed run keeps the step it failed in
    if counts is not None:
        values["counts"] = _plain_counts(counts)
    ReconcileRun.objects.filter(pk=run.pk).update(**values)


def _plain_counts(counts) -> dict:
    return {t: dict(row) for t, row in counts.items()}


# -- the entry point ---------------------------------------------------------------
def select_targets(name: str | None) -> list[Target]:
    targets = active_targets()
    if name is None:
        if not targets:
            raise TargetUnavailable("No index target is active.", reason="misconfigured")
        return targets
    chosen = [t for t in targets if t.name == name]
    if not chosen:
        active = ", ".join(t.name for t in targets) or "none"
        raise TargetUnavailable(
            f"Target {name!r} is not active (active: {active}).", reason="misconfigured"
        )
    return chosen


def reconcile(
    *,
    target: str | None = None,
    types: list[str] | None = None,
    project_id: int | None = None,
    full: bool = False,
    dry_run: bool = False,
    batch_size: int = 500,
    delete: bool = True,
    progress: Progress | None = None,
) -> ReconcileReport:
    """Bring each chosen target exactly in line with the database.

    Raises TargetUnavailable if `target` names no active target.
    """
    types = list(types or TYPE_NAMES)
    unknown = [t for t in types if t not in OBJECT_TYPES]
    if unknown:
        raise ValueError(f"Unknown types: {', '.join(unknown)}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    progress = progress or Progress()
    options = {
        "types": types,
        "project_id": project_id,
        "full": full,
        "dry_run": dry_run,
        "batch_size": batch_size,
        "delete": delete,
    }
    all_active = active_targets()
    report = ReconcileReport()
    for chosen in select_targets(target):
        result = TargetResult(target=chosen.name, label=chosen.label)
        report.targets.append(result)
        try:
            run, result.taken_over = claim(chosen.name, options)
        except RunLocked as exc:
            result.locked_by = exc.holder
            result.error = f"Another run holds {chosen.name}: {exc}"
            continue
        result.run_id = run.pk
        started = time.monotonic()
        try:
            _run_target(
                chosen,
                run,
                result,
                all_active=all_active,
                types=types,
                project_id=project_id,
                full=full,
                dry_run=dry_run,
                batch_size=batch_size,
                delete=delete,
                progress=progress,
            )
        except TargetUnavailable as exc:
            result.unavailable = True
            result.error = str(exc)
            if not dry_run:
                _set_status(chosen, error=str(exc))
            _finish(run, status=ReconcileStatus.FAILED, error=str(exc), counts=result.counts)
        except BaseException as exc:
            _finish(
                run,
                status=ReconcileStatus.FAILED,
                error=f"{type(exc).__name__}: {exc}",
                counts=result.counts,
            )
            raise
        else:
            failed = result.total("failed")
            _finish(
                run,
                status=ReconcileStatus.COMPLETED,
                error=f"{failed} objects failed" if failed else "",
                counts=result.counts,
            )
        finally:
            progress.finish()
            result.seconds = time.monotonic() - started
    return report


def _drain(target: Target, all_active: list[Target], result: TargetResult) -> None:
    # Fold for every active target (the outbox is shared), write for this one.
    fold_outbox(target_names=[t.name for t in all_active])
    drained = _drain_target(target, cutoff=timezone.now(), max_batches=None)
    if drained.error:
        raise TargetUnavailable(drained.error)
    result.drained += drained.written + drained.deleted


def _run_target(
    target: Target,
    run: ReconcileRun,
    result: TargetResult,
    *,
    all_active: list[Target],
    types: list[str],
    project_id: int | None,
    full: bool,
    dry_run: bool,
    batch_size: int,
    delete: bool,
    progress: Progress,
) -> None:
    for t in types:
        result.counts.setdefault(t, _zero())  # every chosen type appears in the table
    with target.session():
        if not dry_run:
            _heartbeat(run, step="draining the outbox")
            _drain(target, all_active, result)
        with (
            tempfile.TemporaryDirectory(prefix="agira-reconcile-") as folder,
            closing(sqlite3.connect(Path(folder) / "index.sqlite3")) as db,
        ):
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute(
                "CREATE TABLE idx (uuid TEXT PRIMARY KEY, type TEXT, object_id TEXT,"
                " project_id TEXT, hash TEXT, seen INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"
            )
            _heartbeat(run, step="reading the index")
            _scan(target, run, db, progress)
            for object_type in types:
                _compare_type(
                    target,
                    run,
                    result,
                    db,
                    object_type,
                    project_id=project_id,
                    full=full,
                    dry_run=dry_run,
                    batch_size=batch_size,
                    progress=progress,
                )
                progress.finish()
            _heartbeat(run, step="looking for orphans", counts=_plain_counts(result.counts))
            _orphans(
                target,
                run,
                result,
                db,
                types,
                project_id=project_id,
                dry_run=dry_run,
                delete=delete,
                batch_size=batch_size,
            )
        if not dry_run:
            _heartbeat(run, step="draining the outbox again")
            _drain(target, all_active, result)
            _set_status(target)


def _scan(target: Target, run: ReconcileRun, db: sqlite3.Connection, progress: Progress) -> None:
    """Copy the index's ids and content hashes into the temporary table."""
    progress.start(f"{target.name}: reading the index", None)
    rows: list[tuple] = []
    beat = time.monotonic()

    def flush() -> None:
        db.executemany("INSERT OR REPLACE INTO idx VALUES (?, ?, ?, ?, ?, 0)", rows)
        progress.advance(len(rows))
        rows.clear()

    for seen, (oid, payload) in enumerate(target.iter_documents(), start=1):
        object_type = payload.get("type")
        try:
            digest = content_hash(normalise(payload), normalised=True)
        except (TypeError, ValueError):
            digest = ""  # unreadable: it differs from anything we would write
        rows.append(
            (
                str(oid),
                object_type,
                str(payload.get("object_id") or ""),
                str(payload.get("project_id") or ""),
                digest,
            )
        )
        if len(rows) >= 2000:
            flush()
            if time.monotonic() - beat > HEARTBEAT_EVERY:
                _heartbeat(run, step=f"reading the index: {seen} objects")
                beat = time.monotonic()
    flush()
    db.commit()
    progress.finish()


def _lookup(db: sqlite3.Connection, uuids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(uuids), LOOKUP_CHUNK):
        chunk = uuids[start : start + LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(
            db.execute(f"SELECT uuid, hash FROM idx WHERE uuid IN ({marks})", chunk)  # noqa: S608
        )
    return found


def _compare_type(
    target: Target,
    run: ReconcileRun,
    result: TargetResult,
    db: sqlite3.Connection,
    object_type: str,
    *,
    project_id: int | None,
    full: bool,
    dry_run: bool,
    batch_size: int,
    progress: Progress,
) -> None:
    spec = OBJECT_TYPES[object_type]
    queryset = spec.queryset()
    if project_id is not None:
        queryset = queryset.filter(**{PROJECT_FILTER[object_type]: project_id})
    counts = result.counts[object_type]
    progress.start(f"{target.name}: {object_type}", queryset.count())
    last_pk = None
    while True:
        chunk_qs = queryset.order_by("pk")
        if last_pk is not None:
            chunk_qs = chunk_qs.filter(pk__gt=last_pk)
        rows = list(chunk_qs[:batch_size])
        if not rows:
            break
        last_pk = rows[-1].pk
        docs: list[tuple[str, str, dict, str]] = []
        failures: list[tuple[str, str]] = []
        for obj in rows:
            try:
                doc = normalise(spec.serialize(obj))
                docs.append(
                    (
                        str(obj.pk),
                        str(object_uuid(object_type, obj.pk)),
                        doc,
                        content_hash(doc, normalised=True),
                    )
                )
            except Exception as exc:
                logger.exception("Serializing %s:%s failed", object_type, obj.pk)
                failures.append((str(obj.pk), f"Serializer: {exc}"))
                counts["failed"] += 1
        compared = len(rows)
        del rows
        have = _lookup(db, [d[1] for d in docs])
        db.executemany("UPDATE idx SET seen = 1 WHERE uuid = ?", [(d[1],) for d in docs])
        writes: list[tuple[str, str, dict, str, str]] = []  # + action
        synced: list[tuple[str, str]] = []  # (object id, hash) now in the index
        for object_id, oid, doc, digest in docs:
            current = have.get(oid)
            if current is None:
                writes.append((object_id, oid, doc, digest, "created"))
            elif full or current != digest:
                writes.append((object_id, oid, doc, digest, "updated"))
            else:
                counts["unchanged"] += 1
                synced.append((object_id, digest))
        if writes and not dry_run:
            errors = target.upsert_many([(uuid.UUID(w[1]), w[2]) for w in writes])
        else:
            errors = {}
        for index, (object_id, _oid, _doc, digest, action) in enumerate(writes):
            if index in errors:
                counts["failed"] += 1
                failures.append((object_id, errors[index]))
            else:
                counts[action] += 1
                synced.append((object_id, digest))
        if not dry_run:
            _record(target.name, object_type, synced, failures)
        _heartbeat(
            run,
            step=f"{object_type}: compared up to pk {last_pk}",
            counts=_plain_counts(result.counts),
            progress={**(run.progress or {}), object_type: last_pk},
        )
        run.progress = {**(run.progress or {}), object_type: last_pk}
        progress.advance(compared)


def _record(
    target_name: str,
    object_type: str,
    synced: list[tuple[str, str]],
    failures: list[tuple[str, str]],
) -> None:
    """Sync records for what the index now holds, so buttons show green.

    Records already synced with the same hash are left alone (a warm run
    writes nothing), and so are pending ones: a newer change is on its way and
    the drain owns it.
    """
    ids = [object_id for object_id, _ in synced] + [object_id for object_id, _ in failures]
    if not ids:
        return
    existing = {
        object_id: (state, digest)
        for object_id, state, digest in SyncRecord.objects.filter(
            target=target_name, object_type=object_type, object_id__in=ids
        ).values_list("object_id", "state", "content_hash")
    }
    written = [
        (object_type, object_id, digest)
        for object_id, digest in synced
        if not (
            existing.get(object_id) == (SyncState.SYNCED, digest)
            or (existing.get(object_id) and existing[object_id][0] == SyncState.PENDING)
        )
    ]
    failed = [(object_type, object_id, error) for object_id, error in failures]
    record_outcomes(target_name, written=written, failed=failed)


def _orphans(
    target: Target,
    run: ReconcileRun,
    result: TargetResult,
    db: sqlite3.Connection,
    types: list[str],
    *,
    project_id: int | None,
    dry_run: bool,
    delete: bool,
    batch_size: int,
) -> None:
    """Delete what the index holds of Agira's types and the database does not."""
    marks = ",".join("?" * len(types))
    sql = f"SELECT uuid, type, object_id FROM idx WHERE seen = 0 AND type IN ({marks})"  # noqa: S608
    params: list = list(types)
    if project_id is not None:
        sql += " AND project_id = ?"
        params.append(str(project_id))
    cursor = db.execute(sql + " ORDER BY type, uuid", params)
    while True:
        batch = cursor.fetchmany(batch_size)
        if not batch:
            break
        by_type: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for oid, object_type, object_id in batch:
            by_type[object_type].append((oid, object_id))
        for object_type, entries in by_type.items():
            spec = OBJECT_TYPES[object_type]
            pks = [int(object_id) for _oid, object_id in entries if object_id.isdigit()]
            alive = {
                str(pk) for pk in spec.queryset().filter(pk__in=pks).values_list("pk", flat=True)
            }
            # A row that exists (created during this run, or outside the
            # chosen project) is not an orphan, unless this copy sits under an
            # id that is not its own.
            orphans = [
                (oid, object_id)
                for oid, object_id in entries
                if object_id not in alive or oid != str(object_uuid(object_type, object_id))
            ]
            if not orphans:
                continue
            counts = result.counts[object_type]
            if not delete:
                result.orphans_kept += len(orphans)
                continue
            if dry_run:
                counts["deleted"] += len(orphans)
                continue
            errors = target.delete_many([uuid.UUID(oid) for oid, _ in orphans])
            gone = [object_id for i, (_o, object_id) in enumerate(orphans) if i not in errors]
            counts["deleted"] += len(orphans) - len(errors)
            counts["failed"] += len(errors)
            SyncRecord.objects.filter(
                target=target.name, object_type=object_type, object_id__in=gone
            ).exclude(state=SyncState.PENDING).update(
                state=SyncState.DELETED,
                operation=SyncOperation.DELETE,
                last_error="",
                changed_at=timezone.now(),
            )
        _heartbeat(run, counts=_plain_counts(result.counts))
