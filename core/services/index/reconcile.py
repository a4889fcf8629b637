"""Reconcile: make an index target hold exactly what the database holds.

`manage.py sync_weaviate` is a thin shell around `reconcile()`. For each
target it

1. takes the target's run lock (one `ReconcileRun` row whose unique `lock`
   column holds the target's name: an atomic insert on every database; a
   holder whose process died or whose heartbeat is old is taken over),
2. drains the outbox (unless it is a dry run),
3. reads what the index really holds: each object's id, type, object id,
   project and content hash, in on-disk SQLite (ids as their 16 bytes). The
   comparison never holds the index in memory, so memory stays flat however
   many objects there are.

   * A target with versions (Weaviate: every object's last update time, which
     every write of it changes) is walked for ids and versions only, a page at
     a time in id order, each page merged with the target's *index mirror*: a
     SQLite file the runs keep (`AGIRA_RECONCILE_CACHE_DIR`, default
     `var/reconcile/`) with id, version, type, object id, project and hash per
     object. A document is read and hashed again only when its version is not
     the mirror's; entries the walk did not return are dropped. An entry is
     only ever made from a document and its version read together, in one
     reply, so an unchanged version means an unchanged document: anything
     written to the index since, by Agira or behind its back, has another
     version and is read again (short of a second write within the same
     millisecond as the read). Documents this run writes are read back into
     the mirror, so the next run need not read them. The mirror is a cache:
     lost, corrupt, or made by other document code (`documents_fingerprint()`),
     it costs one run that reads every document.
   * A target without versions (Qdrant) is walked with every document, each
     hashed (payloads only, no vectors).
4. walks the database type by type. Streams go into SQLite: the ids of the
   rows in scope, those of them *fresh*, and sync records; one join there
   finds the rows to leave alone, neither loaded nor serialized, counted
   unchanged. A row is left alone when

   * a previous completed, non-dry run of this target compared this type (over
     all projects, or over this run's project) with the same document code, and
   * it is not fresh: neither the row nor any row its document is built from
     (the type's `select_related` paths: the item and project of a comment,
     the project of a release, ...) has an `updated_at` after that run's start
     minus `AGIRA_RECONCILE_MARGIN_SECONDS` (default 600: covers transactions
     still open while that run read, and clocks a little apart), and
   * its sync record is synced and its hash equals the hash of the document
     the index holds under the object's own id.

   The last test needs every record's hash, unless the mirror's entries carry
   it already: an entry is *confirmed* when a run found its record synced with
   the entry's hash (a new version clears it), and a completed run over all
   projects notes when it started (`confirmed:<type>` in the mirror); after
   that, every entry of the type it left confirmed matched its record at the
   time. The next run then reads only the records changed since that start
   (minus the margin): a row whose record is among them is tested against its
   hash, any other row's record is as it was, so its entry's confirmation
   stands for the test.

   Every other row (new, fresh, never compared, record pending or failed,
   missing from the index or different there, or `--full`) is loaded in
   primary-key batches, serialized and hashed: missing → created, different →
   updated, one write per batch; `full` rewrites everything,
5. deletes orphans: objects of Agira's types that are no row's (per type, only
   when the index holds more of the type than rows matched it), whose row
   really is gone (checked again in the database before deleting),
6. drains again what arrived meanwhile, and records the outcome.

Why leaving a row alone is safe. The run R the rule refers to compared the row
(or left it alone by this same rule, so an earlier run compared it, and
nothing has changed since) and left its record synced with the hash of what
the index held and the database produced, or not synced. Since R:

* a change of the row through `save()`, or a `QuerySet.update()` that sets
  `updated_at`, makes it fresh; so does such a change of a row its document
  is built from. That covers the parents whose change alters a child's
  document: a project's organisation (in every child's `org_id`), an item's
  project (in its comments', attachments' and links' `project_id`), a
  project's name (in its releases' titles). Moves also mark the children for
  sync (signals.py), and then, as for every change recorded through the
  signals or `mark_for_sync`, the drain writes the new document and records
  its hash (the index and the record agree again), or the record stays pending
  or failed and the row is serialized;
* a change of the index (an object edited, replaced or restored behind
  Agira's back) gives the index another hash than the record's: serialized,
  compared, repaired. An object gone from the index is created;
* a deploy that changes the documents (documents.py,
  `AGIRA_INDEX_MAX_TEXT_CHARS`, the URLs in them) changes the fingerprint, so
  no earlier run counts and the next run compares every row once.

What it cannot see: a change that neither sets `updated_at` nor goes through
the signals or `mark_for_sync` (`QuerySet.update(title=...)` alone, raw SQL,
made more than the margin before the last run), and a renamed user (a
comment's title carries its author's name; users have no `updated_at`). For
those, `--full` rewrites everything.

Every write is an upsert under a deterministic id, so a run killed half-way
leaves nothing the next run would duplicate: that run compares again and finds
what the killed run wrote unchanged.
"""

import hashlib
import logging
import sqlite3
import tempfile
import time
import uuid
from collections import defaultdict
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from core.models import (
    ReconcileRun,
    ReconcileStatus,
    SyncOperation,
    SyncRecord,
    SyncState,
)
from core.services import runlock

from .documents import (
    OBJECT_TYPES,
    TYPE_NAMES,
    ObjectType,
    content_hash,
    normalise,
    object_uuid,
)
from .engine import (
    _drain_target,
    _set_status,
    active_targets,
    expected_model,
    fold_outbox,
    record_outcomes,
    write_documents,
)
from .targets.base import Target, TargetUnavailable, supports_versions

logger = logging.getLogger("agira.index.reconcile")

ACTIONS = ("created", "updated", "unchanged", "deleted", "failed")
# Exit codes of `manage.py sync_weaviate` (documented in docs/operations.md).
EXIT_OK, EXIT_FAILED, EXIT_LOCKED, EXIT_UNAVAILABLE = 0, 1, 2, 3
# The index differs from the database and the run was told not to change it:
# a dry run that found work, or orphans left by --no-delete.
EXIT_DIFFERENCES = 4
# With several targets, the most serious outcome is the command's.
SEVERITY = (EXIT_OK, EXIT_DIFFERENCES, EXIT_FAILED, EXIT_LOCKED, EXIT_UNAVAILABLE)
HEARTBEAT_EVERY = 5.0  # seconds between heartbeats while scanning the index
LOOKUP_CHUNK = 500  # ids per SQLite IN (...) lookup
STREAM_CHUNK = 5000  # ids and record hashes per database fetch and SQLite insert
READ_CHUNK = 500  # documents read (and hashed) per request while refreshing the mirror
MIRROR_FORMAT = "1"
# The URL names documents.py builds links with (part of the documents' fingerprint).
DOCUMENT_URL_NAMES = ("core:item-detail", "core:attachment-download", "core:project-detail")

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
    return timedelta(seconds=settings.AGIRA_RECONCILE_STALE_SECONDS)


def changed_margin() -> timedelta:
    """How long before the start of the last run a row still counts as changed."""
    return timedelta(seconds=settings.AGIRA_RECONCILE_MARGIN_SECONDS)


def mirror_folder() -> Path:
    return Path(settings.AGIRA_RECONCILE_CACHE_DIR)


def documents_fingerprint() -> str:
    """Changes whenever the documents could: their code, the text cap, the URLs."""
    from . import documents

    digest = hashlib.sha256(Path(documents.__file__).read_bytes())
    digest.update(f"|{settings.AGIRA_INDEX_MAX_TEXT_CHARS}".encode())
    for name in DOCUMENT_URL_NAMES:
        try:
            digest.update(f"|{reverse(name, args=[0])}".encode())
        except NoReverseMatch:
            digest.update(f"|{name}?".encode())
    return digest.hexdigest()[:16]


HOST = runlock.HOST


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
    dry_run: bool = False

    def total(self, action: str) -> int:
        return sum(row[action] for row in self.counts.values())

    @property
    def differences(self) -> int:
        """What a dry run would change, and the orphans left in place: the
        ways the index still differs from the database after this run."""
        left = self.orphans_kept
        if self.dry_run:
            left += self.total("created") + self.total("updated") + self.total("deleted")
        return left

    @property
    def state(self) -> str:
        """One honest word or phrase for the summary line."""
        if self.unavailable:
            return "unavailable"
        if self.error:
            return "failed"
        failed = self.total("failed")
        if failed:
            return f"{failed} object{'s' * (failed != 1)} failed"
        if self.differences:
            count = f"{self.differences} object{'s' * (self.differences != 1)}"
            return f"would change {count}" if self.dry_run else f"{count} left differing"
        return "in sync"

    @property
    def exit_code(self) -> int:
        if self.unavailable:
            return EXIT_UNAVAILABLE
        if self.locked_by is not None:
            return EXIT_LOCKED
        if self.error or self.total("failed"):
            return EXIT_FAILED
        if self.differences:
            return EXIT_DIFFERENCES
        return EXIT_OK


@dataclass
class ReconcileReport:
    targets: list[TargetResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The most serious outcome of any target (3 > 2 > 1 > 4 > 0)."""
        return max((t.exit_code for t in self.targets), default=EXIT_OK, key=SEVERITY.index)


# -- the lock (core.services.runlock: one run per target) ---------------------------
RunLocked = runlock.RunLocked


def claim(target_name: str, options: dict) -> tuple[ReconcileRun, str]:
    """Take the target's lock in a new run; raise RunLocked if a live run has it.

    Returns the run and, if a stale run was taken over, what happened to it.
    """
    return runlock.claim(
        ReconcileRun,
        target_name,
        stale_after=stale_after(),
        failed_status=ReconcileStatus.FAILED,
        target=target_name,
        status=ReconcileStatus.IN_PROGRESS,
        step="starting",
        options=options,
    )


def _claim_all(
    targets: list[Target], options: dict, report: ReconcileReport
) -> list[tuple[Target, "TargetResult", ReconcileRun]] | None:
    """Take the lock of every chosen target before any work, all or none.

    Locks are taken in one order (by name), so of two runs asking for the same
    targets the second meets a held lock at its first and leaves at once. When
    one is held, the locks this run took are given back (their runs, which did
    nothing, are removed) and every chosen target is reported as left to the
    holder: None is returned."""
    taken: list[tuple[Target, TargetResult, ReconcileRun]] = []
    for chosen in sorted(targets, key=lambda t: t.name):
        result = TargetResult(target=chosen.name, label=chosen.label, dry_run=options["dry_run"])
        try:
            run, result.taken_over = claim(chosen.name, options)
        except RunLocked as exc:
            ReconcileRun.objects.filter(pk__in=[r.pk for _t, _r, r in taken]).delete()
            for target in targets:  # reported in the order asked for
                if target.name == chosen.name:
                    left = result
                    left.error = f"Another run holds {chosen.name}: {exc}"
                else:
                    left = TargetResult(
                        target=target.name, label=target.label, dry_run=options["dry_run"]
                    )
                    left.error = (
                        f"Left to run #{exc.holder.pk}, which holds {chosen.name}: "
                        "this run does all its targets or none"
                    )
                left.locked_by = exc.holder
                report.targets.append(left)
            return None
        result.run_id = run.pk
        taken.append((chosen, result, run))
    order = {t.name: n for n, t in enumerate(targets)}
    taken.sort(key=lambda entry: order[entry[0].name])
    report.targets.extend(result for _t, result, _run in taken)
    # The runs waiting for their turn beat with the one at work, so that no
    # other host takes their locks over as stale meanwhile.
    pks = [run.pk for _t, _r, run in taken]
    for _target, _result, run in taken:
        run._held_with = [pk for pk in pks if pk != run.pk]
    ReconcileRun.objects.filter(pk__in=pks[1:]).update(
        step=f"waiting: this run does {taken[0][0].name} first"
    )
    return taken


def _heartbeat(run: ReconcileRun, *, due_only: bool = False, **values) -> None:
    """Save the run's state; with `due_only` only if the last save is
    HEARTBEAT_EVERY seconds old (a commit costs a disk sync on SQLite)."""
    now = time.monotonic()
    if due_only and now - getattr(run, "_saved_at", 0.0) < HEARTBEAT_EVERY:
        return
    run._saved_at = now
    values["heartbeat_at"] = timezone.now()
    ReconcileRun.objects.filter(pk=run.pk).update(**values)
    waiting = getattr(run, "_held_with", None)
    if waiting:
        ReconcileRun.objects.filter(pk__in=waiting, lock__isnull=False).update(
            heartbeat_at=values["heartbeat_at"]
        )


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
    fingerprint = documents_fingerprint()
    options = {
        "types": types,
        "project_id": project_id,
        "full": full,
        "dry_run": dry_run,
        "batch_size": batch_size,
        "delete": delete,
        "documents": fingerprint,  # which earlier runs a later one can build on
    }
    all_active = active_targets()
    chosen_targets = select_targets(target)
    report = ReconcileReport()
    runs = _claim_all(chosen_targets, options, report)
    if runs is None:
        return report  # another run holds one of them: nothing was done
    for chosen, result, run in runs:
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
                fingerprint=fingerprint,
            )
        except TargetUnavailable as exc:
            result.unavailable = True
            result.error = str(exc)
            if not dry_run:
                _set_status(chosen, error=str(exc), reason=exc.reason)
            _finish(run, status=ReconcileStatus.FAILED, error=str(exc), counts=result.counts)
        except BaseException as exc:
            _finish(
                run,
                status=ReconcileStatus.FAILED,
                error=f"{type(exc).__name__}: {exc}",
                counts=result.counts,
            )
            # The targets after this one were never started: free their locks.
            for _later, _result, later_run in runs[runs.index((chosen, result, run)) + 1 :]:
                _finish(
                    later_run,
                    status=ReconcileStatus.FAILED,
                    error=f"Not started: the run stopped at {chosen.name} ({type(exc).__name__})",
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
    fingerprint: str,
) -> None:
    for t in types:
        result.counts.setdefault(t, _zero())  # every chosen type appears in the table
    model = expected_model(target)
    with target.session():
        if full and not dry_run:
            _reset_vectors_of_another_model(target, model)
        if not dry_run:
            _heartbeat(run, step="draining the outbox")
            _drain(target, all_active, result)
        with (
            tempfile.TemporaryDirectory(prefix="agira-reconcile-") as folder,
            closing(sqlite3.connect(Path(folder) / "index.sqlite3")) as db,
        ):
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            # Index ids the database walk compared one by one (`seen`) and, per
            # type, every row in scope (`rows_<type>`): what the index holds
            # beyond both is orphaned.
            db.execute("CREATE TABLE seen (uuid BLOB PRIMARY KEY) WITHOUT ROWID")
            _heartbeat(run, step="reading the index")
            mirror = supports_versions(target)
            if mirror:
                _open_mirror(db, target, fingerprint, Path(folder))
                _scan_versions(target, run, db, progress)
            else:
                _scan(target, run, db, progress)
            since = {} if full else _compared_since(target.name, types, project_id, fingerprint)
            confirmed = _confirmed_since(db) if mirror else {}
            matched: dict[str, int] = {}  # per type: index objects that are a row's
            for object_type in types:
                matched[object_type] = _compare_type(
                    target,
                    run,
                    result,
                    db,
                    object_type,
                    project_id=project_id,
                    full=full,
                    dry_run=dry_run,
                    batch_size=batch_size,
                    since=since.get(object_type),
                    mirror=mirror,
                    confirmed_since=confirmed.get(object_type),
                    progress=progress,
                    model=model,
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
                matched=matched,
            )
            if mirror and not dry_run and project_id is None:
                # Every row of these types was compared or left alone, and
                # each entry's confirmation set accordingly.
                db.executemany(
                    "INSERT OR REPLACE INTO m.meta VALUES (?, ?)",
                    [(f"confirmed:{t}", run.started_at.isoformat()) for t in types],
                )
                db.commit()
        if not dry_run:
            _heartbeat(run, step="draining the outbox again")
            _drain(target, all_active, result)
            _set_status(target)


def _reset_vectors_of_another_model(target: Target, model: str) -> None:
    """A full run after a change of model to one of another dimension: the
    embedded index drops its vectors so that the run can write the new ones
    (Weaviate and Qdrant collections are never altered; their targets say so)."""
    vector_info = getattr(target, "vector_info", None)
    reset = getattr(target, "reset_vectors", None)
    if vector_info is None or reset is None or not model:
        return
    stored = vector_info()
    dimension = model.rsplit(":", 1)[-1]
    if stored is not None and (str(stored[0]) != dimension or stored[1] != model):
        logger.warning(
            "%s holds vectors of %s; dropping them to write those of %s",
            target.label,
            stored[1] or "another model",
            model,
        )
        reset()


def _compared_since(
    target_name: str, types: list[str], project_id: int | None, fingerprint: str
) -> dict[str, datetime]:
    """Per type, the time after which a row counts as changed: the start of the
    newest completed, non-dry run that compared the type over all projects (or
    this run's project) with the same document code, minus the margin. A type
    no such run compared is absent: every row of it is serialized."""
    since: dict[str, datetime] = {}
    runs = (
        ReconcileRun.objects.filter(target=target_name, status=ReconcileStatus.COMPLETED)
        .order_by("-started_at", "-id")
        .values_list("started_at", "options")[:100]
    )
    for started_at, options in runs:
        options = options or {}
        if (
            options.get("dry_run")
            or options.get("documents") != fingerprint
            or options.get("project_id") not in (None, project_id)
        ):
            continue
        for object_type in options.get("types") or ():
            if object_type in types and object_type not in since:
                since[object_type] = started_at - changed_margin()
        if len(since) == len(types):
            break
    return since


def _confirmed_since(db: sqlite3.Connection) -> dict[str, datetime]:
    """Per type, since when the mirror's confirmations hold (see _decide)."""
    return {
        key.split(":", 1)[1]: datetime.fromisoformat(value)
        for key, value in db.execute("SELECT key, value FROM m.meta WHERE key LIKE 'confirmed:%'")
    }


# -- reading the index ---------------------------------------------------------
def _index_row(oid: bytes, payload: dict) -> tuple:
    """(uuid, type, object id, project, content hash, pk) of a document in the
    index; ids are kept as their 16 bytes throughout (they sort like the text)."""
    try:
        digest = content_hash(normalise(payload), normalised=True)
    except (TypeError, ValueError):
        digest = ""  # unreadable: it differs from anything we would write
    object_type = payload.get("type")
    object_id = str(payload.get("object_id") or "")
    own = (
        object_type in OBJECT_TYPES
        and object_id.isdigit()
        and object_uuid(object_type, object_id).bytes == oid
    )
    return (
        oid,
        object_type,
        object_id,
        str(payload.get("project_id") or ""),
        digest,
        int(object_id) if own else None,
    )


def _scan(target: Target, run: ReconcileRun, db: sqlite3.Connection, progress: Progress) -> None:
    """Copy the index's ids and content hashes into the temporary table, reading
    every document (a target without versions)."""
    progress.start(f"{target.name}: reading the index", None)
    db.execute(
        "CREATE TABLE idx (uuid BLOB PRIMARY KEY, type TEXT, object_id TEXT,"
        " project_id TEXT, hash TEXT, pk INTEGER) WITHOUT ROWID"
    )
    rows: list[tuple] = []
    beat = time.monotonic()

    def flush() -> None:
        db.executemany("INSERT OR REPLACE INTO idx VALUES (?, ?, ?, ?, ?, ?)", rows)
        progress.advance(len(rows))
        rows.clear()

    for seen, (oid, payload) in enumerate(target.iter_documents(), start=1):
        rows.append(_index_row(oid.bytes, payload))
        if len(rows) >= 2000:
            flush()
            if time.monotonic() - beat > HEARTBEAT_EVERY:
                _heartbeat(run, step=f"reading the index: {seen} objects")
                beat = time.monotonic()
    flush()
    db.execute("CREATE INDEX idx_pk ON idx (type, pk, hash)")
    db.commit()
    progress.finish()


def _open_mirror(db: sqlite3.Connection, target: Target, fingerprint: str, spare: Path) -> None:
    """Attach the target's index mirror as schema `m`. A corrupt file is made
    again; if the mirror folder cannot be used at all, a mirror in this run's
    temporary folder does (the run then reads every document)."""
    key = getattr(target, "mirror_key", lambda: target.name)()
    name = f"{target.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sqlite3"
    path = mirror_folder() / name
    for fresh_start in (False, True):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _attach_mirror(db, path, fingerprint)
            return
        except (OSError, sqlite3.Error) as exc:
            with suppress(sqlite3.Error):
                db.execute("DETACH DATABASE m")
            corrupt = isinstance(exc, sqlite3.DatabaseError) and not isinstance(
                exc, sqlite3.OperationalError
            )
            logger.warning("The index mirror %s is unusable: %s", path, exc)
            if not corrupt or fresh_start:
                break
            with suppress(OSError):
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
    _attach_mirror(db, spare / name, fingerprint)


def _attach_mirror(db: sqlite3.Connection, path: Path, fingerprint: str) -> None:
    db.execute("ATTACH DATABASE ? AS m", (str(path),))
    db.execute("PRAGMA m.journal_mode=WAL")
    db.execute("PRAGMA m.synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS m.meta (key TEXT PRIMARY KEY, value TEXT)")
    meta = dict(db.execute("SELECT key, value FROM m.meta"))
    if meta.get("format") != MIRROR_FORMAT or meta.get("documents") != fingerprint:
        # Another layout, or hashes made by other document code: worthless.
        db.execute("DROP TABLE IF EXISTS m.objects")
        db.execute("DELETE FROM m.meta WHERE key LIKE 'confirmed:%'")
        db.executemany(
            "INSERT OR REPLACE INTO m.meta VALUES (?, ?)",
            [("format", MIRROR_FORMAT), ("documents", fingerprint)],
        )
    db.execute(
        "CREATE TABLE IF NOT EXISTS m.objects (uuid BLOB PRIMARY KEY, version INTEGER,"
        " type TEXT, object_id TEXT, project_id TEXT, hash TEXT, pk INTEGER,"
        " confirmed INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX IF NOT EXISTS m.objects_pk ON objects (type, pk, hash, confirmed)")
    db.commit()


def _scan_versions(
    target: Target, run: ReconcileRun, db: sqlite3.Connection, progress: Progress
) -> None:
    """Bring the mirror in line with the index from a walk of ids and versions,
    reading again only the documents whose version the mirror does not have,
    and make it the table the comparison reads (`idx`).

    The walk comes in id order, page by page; each page is merged with the
    mirror's entries over the same range of ids (entries the walk did not
    return are gone from the index)."""
    progress.start(f"{target.name}: reading the index", None)
    beat = time.monotonic()
    stale: list[bytes] = []
    lower = b""  # every id up to and including it is settled
    read = 0
    seen = 0

    def settle(page: list[tuple[bytes, int | None]], upper: bytes | None) -> None:
        nonlocal lower
        sql, params = "SELECT uuid, version FROM m.objects WHERE uuid > ?", [lower]
        if upper is not None:
            sql += " AND uuid <= ?"
            params.append(upper)
        held = db.execute(sql + " ORDER BY uuid", params).fetchall()
        if held != page:  # else (the usual case) nothing changed in this range
            known = dict(held)
            pop = known.pop
            stale.extend(oid for oid, version in page if pop(oid, None) != version)
            if known:
                db.executemany("DELETE FROM m.objects WHERE uuid = ?", [(oid,) for oid in known])
        progress.advance(len(page))
        lower = upper or lower

    def read_stale() -> None:
        nonlocal read
        for start in range(0, len(stale), READ_CHUNK):
            _remember(target, db, stale[start : start + READ_CHUNK])
        read += len(stale)
        stale.clear()

    for page in target.iter_versions():
        if not page:
            continue
        if page[0][0] <= lower or any(a[0] >= b[0] for a, b in pairwise(page)):
            # The merge below needs the cursor's id order.
            raise TargetUnavailable(
                f"{target.label} did not list its objects in id order; run with --full.",
                reason="misconfigured",
            )
        settle(page, page[-1][0])
        seen += len(page)
        if len(stale) >= READ_CHUNK:
            read_stale()
        if time.monotonic() - beat > HEARTBEAT_EVERY:
            _heartbeat(run, step=f"reading the index: {seen} objects, {read} documents")
            beat = time.monotonic()
    settle([], None)  # past the last id: gone
    read_stale()
    db.execute(
        "CREATE TEMP VIEW idx AS"
        " SELECT uuid, type, object_id, project_id, hash, pk, confirmed FROM m.objects"
    )
    db.commit()
    progress.finish()


def _remember(target: Target, db: sqlite3.Connection, uuids: list[bytes]) -> None:
    """Read these documents with their versions into the mirror (ids the index
    no longer holds leave it)."""
    found = target.fetch_versioned(uuids)
    db.executemany(
        "INSERT OR REPLACE INTO m.objects VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        [
            # An unknown version (-1) never equals one the walk reports.
            (oid, -1 if version is None else version, *_index_row(oid, doc)[1:])
            for oid, (doc, version) in found.items()
        ],
    )
    gone = [(oid,) for oid in uuids if oid not in found]
    if gone:
        db.executemany("DELETE FROM m.objects WHERE uuid = ?", gone)


def _lookup(db: sqlite3.Connection, uuids: list[bytes]) -> dict[bytes, tuple[str, str]]:
    """(hash, type) of what the index holds under these ids."""
    found: dict[bytes, tuple[str, str]] = {}
    for start in range(0, len(uuids), LOOKUP_CHUNK):
        chunk = uuids[start : start + LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT uuid, hash, type FROM idx WHERE uuid IN ({marks})"  # noqa: S608
        found.update((oid, (digest, kind)) for oid, digest, kind in db.execute(sql, chunk))
    return found


# -- comparing the database with it ------------------------------------------------
def stamp_fields(spec: ObjectType) -> list[str]:
    """The `updated_at` of an object's row and of every row its document is
    built from: the serializer's `select_related` paths, each step of them
    (a comment: its item and the item's project). Rows without `updated_at`
    (users) are left out."""
    fields = ["updated_at"]
    for path in spec.related:
        model = spec.model
        parts = path.split("__")
        for depth, part in enumerate(parts, start=1):
            model = model._meta.get_field(part).related_model
            if any(f.name == "updated_at" for f in model._meta.concrete_fields):
                name = "__".join(parts[:depth]) + "__updated_at"
                if name not in fields:
                    fields.append(name)
    return fields


def _rows_in_scope(spec: ObjectType, object_type: str, project_id: int | None) -> QuerySet:
    rows = spec.model._default_manager.all()
    if spec.filters:
        rows = rows.filter(**dict(spec.filters))
    if project_id is not None:
        rows = rows.filter(**{PROJECT_FILTER[object_type]: project_id})
    return rows


def _fill(db: sqlite3.Connection, sql: str, rows) -> None:
    """executemany in chunks, so neither side ever holds a whole stream."""
    chunk: list = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= STREAM_CHUNK:
            db.executemany(sql, chunk)
            chunk.clear()
    if chunk:
        db.executemany(sql, chunk)


def _decide(
    db: sqlite3.Connection,
    target: Target,
    spec: ObjectType,
    object_type: str,
    rows: QuerySet,
    since: datetime | None,
    *,
    confirmed_since: datetime | None,
    confirm: bool,
    model: str = "",
) -> int:
    """Note the type's rows in `rows_<type>` and those that can be left alone
    in `alone`; return how many those are.

    Streams from the database go into SQLite, where one join decides: the ids
    in scope, those of them fresh, and sync records. Left alone: not fresh,
    and the record is synced with the hash of what the index holds under the
    object's own id. Without `since` nothing is.

    The records are all the type's, unless the mirror's confirmations are
    valid (`confirmed_since`: the start of the last completed run over all
    projects that kept them): then only those changed since then (minus the
    margin) are read, and a row whose record has not changed is left alone if
    its mirror entry is confirmed, i.e. was found equal to its synced record
    then and has not changed since (a new version clears it). `confirm`: mark
    the entries of the rows left alone confirmed.
    """
    for table in ("fresh", "rec", "alone"):
        db.execute(f"DELETE FROM {table}")  # noqa: S608 - our names
    db.execute(f"CREATE TABLE IF NOT EXISTS {_rows_table(object_type)} (pk INTEGER PRIMARY KEY)")
    db.executemany(
        f"INSERT OR IGNORE INTO {_rows_table(object_type)} VALUES (?)",  # noqa: S608
        rows.order_by("pk").values_list("pk").iterator(STREAM_CHUNK),
    )
    if since is None:
        return 0
    if confirmed_since is not None:
        since = min(since, confirmed_since - changed_margin())
    # One query per stamp: each can use its `updated_at` index (an OR across
    # the joined tables would read every row).
    for name in stamp_fields(spec):
        db.executemany(
            "INSERT OR IGNORE INTO fresh VALUES (?)",
            rows.filter(**{f"{name}__gte": since})
            .order_by()
            .values_list("pk")
            .iterator(STREAM_CHUNK),
        )
    records = SyncRecord.objects.filter(target=target.name, object_type=object_type)
    if confirmed_since is not None:
        records = records.filter(changed_at__gte=since)
    # The state is checked here, not in SQL: filtering on (target, object_type)
    # alone reads the records' unique index, (target, state) would read every
    # synced record of the target for each type. A record not synced, or whose
    # vector came from another embedding model, has no hash: it is compared.
    _fill(
        db,
        "INSERT OR IGNORE INTO rec VALUES (?, ?)",
        (
            (
                int(object_id),
                digest if state == SyncState.SYNCED and embedded_by == model else None,
            )
            for object_id, state, digest, embedded_by in records.order_by()
            .values_list("object_id", "state", "content_hash", "embedding_model")
            .iterator(STREAM_CHUNK)
            if object_id.isdigit()
        ),
    )
    rows_table = _rows_table(object_type)
    if confirmed_since is None:
        left_alone = db.execute(
            f"INSERT INTO alone SELECT d.pk FROM {rows_table} d"  # noqa: S608
            " JOIN rec r ON r.pk = d.pk JOIN idx i ON i.type = ? AND i.pk = d.pk"
            " WHERE i.hash != '' AND i.hash = r.hash AND d.pk NOT IN (SELECT pk FROM fresh)",
            (object_type,),
        ).rowcount
        newly = "SELECT pk FROM alone"
    else:
        left_alone = db.execute(
            f"INSERT INTO alone SELECT d.pk FROM {rows_table} d"  # noqa: S608
            " JOIN idx i ON i.type = ? AND i.pk = d.pk LEFT JOIN rec r ON r.pk = d.pk"
            " WHERE i.hash != '' AND d.pk NOT IN (SELECT pk FROM fresh)"
            " AND CASE WHEN r.pk IS NULL THEN i.confirmed = 1 ELSE i.hash = r.hash END",
            (object_type,),
        ).rowcount
        newly = "SELECT a.pk FROM alone a JOIN rec r ON r.pk = a.pk"
    if confirm:
        db.execute(
            "UPDATE m.objects SET confirmed = 1"  # noqa: S608
            f" WHERE type = ? AND confirmed = 0 AND pk IN ({newly})",
            (object_type,),
        )
    return left_alone


def _rows_table(object_type: str) -> str:
    return f"rows_{object_type}"  # a key of OBJECT_TYPES: a plain name


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
    since: datetime | None,
    mirror: bool,
    confirmed_since: datetime | None,
    progress: Progress,
    model: str = "",
) -> int:
    """Compare the type's rows; return how many index objects of the type are
    a row's (left alone, or found under the row's id when compared)."""
    spec = OBJECT_TYPES[object_type]
    rows = _rows_in_scope(spec, object_type, project_id)
    counts = result.counts[object_type]
    progress.start(f"{target.name}: {object_type}", rows.count())
    # On disk in the run's temporary folder, like the rest: memory stays flat.
    db.execute("CREATE TABLE IF NOT EXISTS fresh (pk INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE IF NOT EXISTS rec (pk INTEGER PRIMARY KEY, hash TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS alone (pk INTEGER PRIMARY KEY)")
    left_alone = _decide(
        db,
        target,
        spec,
        object_type,
        rows,
        since,
        confirmed_since=confirmed_since,
        confirm=mirror and not dry_run,
        model=model,
    )
    counts["unchanged"] += left_alone
    progress.advance(left_alone)
    _heartbeat(
        run,
        due_only=True,
        step=f"{object_type}: {left_alone} unchanged",
        counts=_plain_counts(result.counts),
    )
    matched = left_alone
    last_pk = 0
    while True:
        pks = [
            pk
            for (pk,) in db.execute(
                f"SELECT pk FROM {_rows_table(object_type)} WHERE pk > ?"  # noqa: S608
                " AND pk NOT IN (SELECT pk FROM alone) ORDER BY pk LIMIT ?",
                (last_pk, batch_size),
            )
        ]
        if not pks:
            break
        last_pk = pks[-1]
        matched += _compare_rows(
            target,
            result,
            db,
            spec,
            object_type,
            pks,
            full=full,
            dry_run=dry_run,
            mirror=mirror,
            model=model,
        )
        run.progress = {**(run.progress or {}), object_type: last_pk}
        _heartbeat(
            run,
            step=f"{object_type}: compared up to pk {last_pk}",
            counts=_plain_counts(result.counts),
            progress=run.progress,
        )
        progress.advance(len(pks))
    db.commit()
    return matched


def _compare_rows(
    target: Target,
    result: TargetResult,
    db: sqlite3.Connection,
    spec: ObjectType,
    object_type: str,
    pks: list[int],
    *,
    full: bool,
    dry_run: bool,
    mirror: bool,
    model: str = "",
) -> int:
    """Serialize these rows, compare them with the index, write the difference
    (and what holds a vector of another embedding model). Returns how many of
    them the index held under their ids (as this type)."""
    counts = result.counts[object_type]
    docs: list[tuple[str, bytes, dict, str]] = []
    failures: list[tuple[str, str]] = []
    for obj in spec.queryset().filter(pk__in=pks).order_by("pk"):
        try:
            doc = normalise(spec.serialize(obj))
            docs.append(
                (
                    str(obj.pk),
                    object_uuid(object_type, obj.pk).bytes,
                    doc,
                    content_hash(doc, normalised=True),
                )
            )
        except Exception as exc:
            logger.exception("Serializing %s:%s failed", object_type, obj.pk)
            failures.append((str(obj.pk), f"Serializer: {exc}"))
            counts["failed"] += 1
    held = _lookup(db, [d[1] for d in docs])
    have = {oid: digest for oid, (digest, _type) in held.items()}
    db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(d[1],) for d in docs])
    other_model = set(
        SyncRecord.objects.filter(
            target=target.name, object_type=object_type, object_id__in=[d[0] for d in docs]
        )
        .exclude(embedding_model=model)
        .values_list("object_id", flat=True)
    )
    writes: list[tuple[str, bytes, dict, str, str]] = []  # + action
    synced: list[tuple[str, str]] = []  # (object id, hash) now in the index
    for object_id, oid, doc, digest in docs:
        current = have.get(oid)
        if current is None:
            writes.append((object_id, oid, doc, digest, "created"))
        elif full or current != digest or object_id in other_model:
            writes.append((object_id, oid, doc, digest, "updated"))
        else:
            counts["unchanged"] += 1
            synced.append((object_id, digest))
    if writes and not dry_run:
        errors, model = write_documents(target, [(uuid.UUID(bytes=w[1]), w[2]) for w in writes])
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
        now_synced = _record(target.name, object_type, synced, failures, model)
        if mirror:
            if len(errors) < len(writes):
                # Read back what was written: the next run knows these versions.
                _remember(target, db, [w[1] for i, w in enumerate(writes) if i not in errors])
            # An entry is confirmed if its record is now synced with its hash.
            db.executemany(
                "UPDATE m.objects SET confirmed = coalesce(hash = ?, 0) WHERE uuid = ?",
                [(now_synced.get(object_id), oid) for object_id, oid, _doc, _h in docs]
                + [
                    (None, object_uuid(object_type, object_id).bytes)
                    for object_id, _error in failures
                ],
            )
    return sum(1 for _digest, held_type in held.values() if held_type == object_type)


def _record(
    target_name: str,
    object_type: str,
    synced: list[tuple[str, str]],
    failures: list[tuple[str, str]],
    model: str = "",
) -> dict[str, str]:
    """Sync records for what the index now holds, so buttons show green.

    Records already synced with the same hash are left alone (a warm run
    writes nothing), and so are pending ones: a newer change is on its way and
    the drain owns it. Returns {object id: hash} of the records now synced.
    """
    ids = [object_id for object_id, _ in synced] + [object_id for object_id, _ in failures]
    if not ids:
        return {}
    existing = {
        object_id: (state, digest, embedded_by)
        for object_id, state, digest, embedded_by in SyncRecord.objects.filter(
            target=target_name, object_type=object_type, object_id__in=ids
        ).values_list("object_id", "state", "content_hash", "embedding_model")
    }
    written = [
        (object_type, object_id, digest)
        for object_id, digest in synced
        if not (
            existing.get(object_id) == (SyncState.SYNCED, digest, model)
            or (existing.get(object_id) and existing[object_id][0] == SyncState.PENDING)
        )
    ]
    failed = [(object_type, object_id, error) for object_id, error in failures]
    record_outcomes(target_name, written=written, failed=failed, embedding_model=model)
    pending = {i for i, (state, _d, _m) in existing.items() if state == SyncState.PENDING}
    return {object_id: digest for object_id, digest in synced if object_id not in pending}


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
    matched: dict[str, int],
) -> None:
    """Delete what the index holds of Agira's types and the database does not."""
    for object_type in types:
        held = db.execute("SELECT COUNT(*) FROM idx WHERE type = ?", (object_type,)).fetchone()[0]
        if held == matched.get(object_type):
            continue  # every object of the type is a row's
        rows_table = _rows_table(object_type)
        sql = (
            "SELECT uuid, object_id FROM idx WHERE type = ? AND uuid NOT IN (SELECT uuid FROM seen)"  # noqa: S608
            f" AND (pk IS NULL OR pk NOT IN (SELECT pk FROM {rows_table}))"
        )
        params: list = [object_type]
        if project_id is not None:
            sql += " AND project_id = ?"
            params.append(str(project_id))
        cursor = db.execute(sql + " ORDER BY uuid", params)
        while batch := cursor.fetchmany(batch_size):
            _delete_orphans(target, result, object_type, batch, dry_run=dry_run, delete=delete)
            _heartbeat(run, counts=_plain_counts(result.counts))


def _delete_orphans(
    target: Target,
    result: TargetResult,
    object_type: str,
    entries: list[tuple[str, str]],
    *,
    dry_run: bool,
    delete: bool,
) -> None:
    spec = OBJECT_TYPES[object_type]
    pks = [int(object_id) for _oid, object_id in entries if object_id.isdigit()]
    alive = {str(pk) for pk in spec.queryset().filter(pk__in=pks).values_list("pk", flat=True)}
    # A row that exists (created during this run, or outside the chosen
    # project) is not an orphan, unless this copy sits under an id that is not
    # its own.
    orphans = [
        (oid, object_id)
        for oid, object_id in entries
        if object_id not in alive or oid != object_uuid(object_type, object_id).bytes
    ]
    if not orphans:
        return
    counts = result.counts[object_type]
    if not delete:
        result.orphans_kept += len(orphans)
        return
    if dry_run:
        counts["deleted"] += len(orphans)
        return
    errors = target.delete_many([uuid.UUID(bytes=oid) for oid, _ in orphans])
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
