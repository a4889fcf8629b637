"""The drain as a Django task (`django-tasks`): enqueued after each committing
transaction in queued mode, run by `manage.py db_worker` in production."""

import logging
import threading

from django_tasks import task

logger = logging.getLogger("agira.index")

_retry_lock = threading.Lock()
_retry_scheduled_until = None


@task()
def drain_outbox() -> dict:
    from core.models import SyncOutbox

    from .dashboard import take_sample
    from .engine import _enqueue_drain, drain
    from .upkeep import check_indexes

    report = drain(automatic=True)
    take_sample()  # the dashboard's pending chart (throttled)
    check_indexes()  # an index that came back empty is written again (throttled)
    if report.retry_after:
        _retry_later(report.retry_after)
    elif SyncOutbox.objects.exists():
        # Changes committed while this drain ran, relying on it: take them next.
        _enqueue_drain()
    summary = {
        name: {
            "written": t.written,
            "deleted": t.deleted,
            "unchanged": t.unchanged,
            "failed": t.failed,
            "error": t.error,
        }
        for name, t in report.targets.items()
    }
    failed = any(t.failed or (t.error and not t.skipped) for t in report.targets.values())
    logger.log(
        logging.WARNING if failed else logging.DEBUG,
        "Sync drain: folded %d changes; %s",
        report.folded,
        summary,
    )
    return summary


def _retry_later(seconds: float) -> None:
    """A target was down: try again once it may be up, where the task backend
    can run a task later (the database queue can; the inline backend cannot,
    and there the next save or `manage.py sync_weaviate` drains)."""
    from datetime import timedelta

    from django.utils import timezone

    global _retry_scheduled_until
    if not drain_outbox.get_backend().supports_defer:
        return
    run_after = timezone.now() + timedelta(seconds=seconds)
    with _retry_lock:
        # One retry at a time from this process: the drains that met the
        # same outage would otherwise each schedule their own.
        if _retry_scheduled_until is not None and _retry_scheduled_until >= timezone.now():
            return
        _retry_scheduled_until = run_after
    drain_outbox.using(run_after=run_after).enqueue()
