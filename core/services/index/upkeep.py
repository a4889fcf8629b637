"""What the task worker does for the sync on its own schedule.

A drain runs after a save commits. Three things need one without a save, and
`manage.py db_worker` (Agira's, see its command) runs `upkeep()` every
`AGIRA_SYNC_UPKEEP_SECONDS` beside the tasks it runs:

* a drain that died mid-batch (the worker was killed) leaves its records
  leased. Its lease ends within `AGIRA_SYNC_LEASE_SECONDS` (the drain renews
  it only while it lives); a holder on this host whose process is gone is
  found at once and its leases freed;
* a record whose write failed waits for its backoff, and a lease for its
  expiry: when either is over, the record is due and a drain is queued;
* the task row of a drain whose worker died stays "running" for ever: it is
  marked failed, saying which worker died.

And an index can come back empty (Weaviate restarted without its volume, a
collection dropped, a new Qdrant server): drains write only what changed, so
the records would go on saying "synced" for objects that are gone.
`check_indexes()` (every `AGIRA_SYNC_INDEX_CHECK_SECONDS`, from the upkeep and
from drain tasks) compares what each index holds with what its records say
is synced; an index holding less than half of that lost it, and its synced
records are made pending again, so the next drain writes them all.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.models import ReconcileRun, SyncOutbox, SyncRecord, SyncState, SyncTargetStatus
from core.services.runlock import HOST, pid_alive

from .engine import (
    _breaker_open,
    _drain_waiting_in_queue,
    _due,
    active_targets,
    schedule_drain,
    token_holder,
)
from .targets.base import Target, TargetUnavailable

logger = logging.getLogger("agira.index")


class WorkerDied(Exception):
    """Recorded as the error of a task whose worker died while running it."""


@dataclass
class UpkeepReport:
    leases_freed: int = 0
    tasks_abandoned: int = 0
    drain_queued: bool = False
    lost: list[str] = field(default_factory=list)  # targets found to have lost objects


def upkeep(targets: list[Target] | None = None) -> UpkeepReport:
    """One round: free dead leases, mark abandoned tasks, check that each
    index still holds what its records say, queue a drain for what is due.
    One part's failure is logged and the others still run."""
    report = UpkeepReport()
    targets = active_targets() if targets is None else targets
    for part in (_free_dead_leases, _mark_abandoned_tasks, _check_indexes, _queue_due_work):
        try:
            part(report, targets)
        except Exception:
            logger.exception("Sync upkeep: %s failed", part.__name__.strip("_").replace("_", " "))
    return report


def _dead_here(holder: tuple[str, int] | None) -> bool:
    return holder is not None and holder[0] == HOST[:60] and not pid_alive(holder[1])


def _free_dead_leases(report: UpkeepReport, _targets) -> None:
    """Leases whose holder process is gone from this host: free them now
    instead of when they expire."""
    now = timezone.now()
    tokens = (
        SyncRecord.objects.filter(state=SyncState.PENDING, claimed_until__gte=now)
        .exclude(claim_token="")
        .values_list("claim_token", flat=True)
        .distinct()
    )
    for token in list(tokens):
        holder = token_holder(token)
        if not _dead_here(holder):
            continue
        freed = SyncRecord.objects.filter(claim_token=token, claimed_until__isnull=False).update(
            claim_token="", claimed_until=None
        )
        if freed:
            report.leases_freed += freed
            logger.warning(
                "Sync upkeep: the drain of pid %d on %s died holding %d records; "
                "they are due again",
                holder[1],
                holder[0],
                freed,
            )


def worker_id(name: str, pid: int) -> str:
    """A task worker's id that names its host and process (as lease tokens do),
    so that its tasks can be found abandoned when the process is gone."""
    prefix = f"{HOST[:60]}:{pid}:"
    return prefix + name[: max(1, 64 - len(prefix))]  # never empty: it ends the id


def _mark_abandoned_tasks(report: UpkeepReport, _targets) -> None:
    """Task rows still "running" whose worker died on this host: failed."""
    try:
        from django_tasks.base import TaskResultStatus
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # pragma: no cover - the database queue is a dependency
        return
    now = timezone.now()
    for row in DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).only(
        "id", "worker_ids", "task_path"
    ):
        worker = row.worker_ids[-1] if row.worker_ids else ""
        holder = token_holder(worker)
        if not _dead_here(holder):
            continue
        error = WorkerDied(
            f"The worker {worker} (pid {holder[1]} on {holder[0]}) died while running this "
            "task; found by the sync upkeep of another worker."
        )
        marked = DBTaskResult.objects.filter(id=row.id, status=TaskResultStatus.RUNNING).update(
            status=TaskResultStatus.FAILED,
            finished_at=now,
            exception_class_path=f"{WorkerDied.__module__}.{WorkerDied.__qualname__}",
            traceback=f"{WorkerDied.__module__}.{WorkerDied.__qualname__}: {error}\n",
            return_value=None,
        )
        if marked:
            report.tasks_abandoned += 1
            logger.warning("Sync upkeep: task %s (%s) abandoned: %s", row.id, row.task_path, error)


def _queue_due_work(report: UpkeepReport, targets: list[Target]) -> None:
    """Queue a drain when changes wait in the outbox or records are due for a
    target that has not just failed, unless one waits in the queue already."""
    now = timezone.now()
    due = SyncOutbox.objects.exists() or any(
        _due(target.name, now, now).exists() for target in targets if not _breaker_open(target.name)
    )
    if not due or _drain_waiting_in_queue():
        return
    from .tasks import drain_outbox

    drain_outbox.enqueue()
    report.drain_queued = True


# -- an index that lost what its records say it holds -----------------------------
# Below this many synced records a count proves little (a new install).
LOST_CHECK_MIN_RECORDS = 20
_checked_lock = threading.Lock()
_checked_at: dict[str, float] = {}  # target -> monotonic time of its last check


def _check_indexes(report: UpkeepReport, targets: list[Target]) -> None:
    report.lost.extend(check_indexes(targets))


def check_indexes(targets: list[Target] | None = None, *, force: bool = False) -> list[str]:
    """Find each target that holds far fewer objects than its synced records
    say (at most once per `AGIRA_SYNC_INDEX_CHECK_SECONDS` per target and
    process, unless `force`), and make those records pending again. Returns
    the names of the targets found so."""
    if not force and settings.AGIRA_SYNC_INDEX_CHECK_SECONDS <= 0:
        return []  # turned off: not even the targets are looked up
    targets = active_targets() if targets is None else targets
    lost = []
    for target in targets:
        if not force and not _check_due(target.name):
            continue
        if ReconcileRun.objects.filter(lock=target.name).exists():
            continue  # a reconcile is rewriting it: its counts are in motion
        synced = SyncRecord.objects.filter(target=target.name, state=SyncState.SYNCED).count()
        if synced < LOST_CHECK_MIN_RECORDS:
            continue
        held = _count(target)
        if held is None:
            continue  # unreachable: the drains report that, and the records wait anyway
        if held * 2 >= synced:
            continue
        mark_index_lost(target, held=held, synced=synced)
        lost.append(target.name)
    return lost


def _count(target: Target) -> int | None:
    """What the index holds; None if it cannot be asked. A failed count is
    tried once more: a client that met a restarted server reconnects, and
    makes the collection again if it was gone."""
    for attempt in (1, 2):
        try:
            with target.session():
                return target.count()
        except TargetUnavailable as exc:
            if attempt == 2:
                logger.info("Could not count what %s holds: %s", target.label, exc)
    return None


def _check_due(name: str) -> bool:
    every = settings.AGIRA_SYNC_INDEX_CHECK_SECONDS
    if every <= 0:
        return False  # turned off
    now = time.monotonic()
    with _checked_lock:
        if now - _checked_at.get(name, float("-inf")) < every:
            return False
        _checked_at[name] = now
        return True


def mark_index_lost(target: Target, *, held: int, synced: int) -> int:
    """Make every synced record of `target` pending, to be written again, and
    say so on the dashboard and in the log. Returns how many were."""
    now = timezone.now()
    with transaction.atomic():
        pending = SyncRecord.objects.filter(target=target.name, state=SyncState.SYNCED).update(
            state=SyncState.PENDING,
            content_hash="",
            last_synced_at=None,
            attempts=0,
            next_attempt_at=None,
            last_error="",
            pending_since=now,
            changed_at=now,
        )
        note = (
            f"{target.label} held {held:,} objects where {synced:,} were synced: it lost them "
            "(restarted without its data, a dropped collection or a new server). "
            f"{pending:,} objects were put back in the queue to be written again."
        )
        SyncTargetStatus.objects.update_or_create(
            target=target.name, defaults={"index_lost_at": now, "index_lost_note": note}
        )
        schedule_drain()
    logger.warning("%s", note)
    return pending
