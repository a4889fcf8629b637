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
"""

import logging
from dataclasses import dataclass

from django.utils import timezone

from core.models import SyncOutbox, SyncRecord, SyncState
from core.services.runlock import HOST, pid_alive

from .engine import _breaker_open, _drain_waiting_in_queue, _due, active_targets, token_holder
from .targets.base import Target

logger = logging.getLogger("agira.index")


class WorkerDied(Exception):
    """Recorded as the error of a task whose worker died while running it."""


@dataclass
class UpkeepReport:
    leases_freed: int = 0
    tasks_abandoned: int = 0
    drain_queued: bool = False


def upkeep(targets: list[Target] | None = None) -> UpkeepReport:
    """One round: free dead leases, mark abandoned tasks, queue a drain for
    what is due. Never raises for one part's failure without trying the
    others (each is logged)."""
    report = UpkeepReport()
    targets = active_targets() if targets is None else targets
    for part in (_free_dead_leases, _mark_abandoned_tasks, _queue_due_work):
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
    return f"{HOST[:60]}:{pid}:{name[: 64 - len(HOST[:60]) - len(str(pid)) - 2]}"


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
