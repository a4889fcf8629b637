"""One run at a time, for commands run from cron.

A run model with a unique, nullable `lock` column, `heartbeat_at`, `host`,
`pid`, `status`, `finished_at` and `error` is the lock: inserting a run with
`lock=<name>` is atomic on every database, so only one run can hold a name.
The run clears its lock when it ends. A holder whose process died (its pid is
gone on this host) or whose heartbeat is older than `stale_after` is taken
over: marked failed, and the new run inserted.
"""

import logging
import os
import socket
from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.utils import timezone

logger = logging.getLogger("agira.runlock")

HOST = socket.gethostname()


class RunLocked(Exception):
    def __init__(self, holder: models.Model):
        super().__init__(describe_holder(holder))
        self.holder = holder


def describe_holder(run: models.Model) -> str:
    age = (timezone.now() - run.heartbeat_at).total_seconds()
    return (
        f"run #{run.pk} on {run.host or '?'} (pid {run.pid}), started "
        f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC, last heartbeat {age:.0f} s ago"
    )


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def stale_reason(run: models.Model, stale_after: timedelta, now=None) -> str | None:
    """Why the holder of a lock is dead, or None if it may be alive."""
    now = now or timezone.now()
    if run.host == HOST and run.pid and not pid_alive(run.pid):
        return f"holder pid {run.pid} on {run.host} died"
    if now - run.heartbeat_at > stale_after:
        return (
            f"holder pid {run.pid} on {run.host or '?'} sent no heartbeat for "
            f"{(now - run.heartbeat_at).total_seconds():.0f} s"
        )
    return None


def claim(
    model: type[models.Model],
    name: str,
    *,
    stale_after: timedelta,
    failed_status: str,
    **fields,
) -> tuple[models.Model, str]:
    """Insert a run of `model` holding lock `name`; raise RunLocked if a live run has it.

    Returns the run and, if a stale holder was taken over, what happened to it.
    """
    taken_over = ""
    for _attempt in range(5):
        now = timezone.now()
        try:
            with transaction.atomic():
                run = model.objects.create(
                    lock=name,
                    started_at=now,
                    heartbeat_at=now,
                    host=HOST,
                    pid=os.getpid(),
                    **fields,
                )
            return run, taken_over
        except IntegrityError:
            holder = model.objects.filter(lock=name).first()
            if holder is None:
                continue  # it ended meanwhile: try again
            reason = stale_reason(holder, stale_after, now)
            if reason is None:
                raise RunLocked(holder) from None
            # Only one taker wins: the update matches the holder as we saw it.
            took = model.objects.filter(
                pk=holder.pk, lock=name, heartbeat_at=holder.heartbeat_at
            ).update(
                lock=None,
                status=failed_status,
                finished_at=now,
                error=f"Stale, taken over by a new run: {reason}.",
            )
            if took:
                taken_over = f"run #{holder.pk} was stale ({reason}): marked failed, taken over"
                logger.warning("%s %s: %s", model._meta.verbose_name, name, taken_over)
    holder = model.objects.filter(lock=name).first()
    if holder is not None:
        raise RunLocked(holder)
    raise RuntimeError(f"Could not take the lock {name!r}")


def heartbeat(run: models.Model, **values) -> None:
    values["heartbeat_at"] = timezone.now()
    type(run).objects.filter(pk=run.pk).update(**values)
