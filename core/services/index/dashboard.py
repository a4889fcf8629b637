"""Reads and small writes behind the sync dashboard."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Min
from django.utils import timezone

from core.models import (
    ReconcileRun,
    SyncOutbox,
    SyncRecord,
    SyncSample,
    SyncState,
    SyncTargetStatus,
)

from .config import weaviate_settings
from .documents import TYPE_NAMES
from .engine import active_targets, schedule_drain

SAMPLE_EVERY = timedelta(seconds=30)
CHART_WINDOW = timedelta(hours=1)
STATES = [SyncState.PENDING, SyncState.SYNCED, SyncState.FAILED, SyncState.DELETED]


@dataclass
class TargetPanel:
    name: str
    label: str
    active: bool
    reachable: bool | None
    reason: str
    checked_at: object
    counts: list[tuple[str, list[int], int]]  # (type, counts per state, row total)
    totals: list[int]
    lag_seconds: float | None
    failed: list[SyncRecord] = field(default_factory=list)
    chart: dict = field(default_factory=dict)
    runs: list[ReconcileRun] = field(default_factory=list)  # newest reconcile runs


def take_sample(*, force: bool = False) -> None:
    """Record pending/failed counts per active target (throttled)."""
    now = timezone.now()
    outbox = SyncOutbox.objects.count()
    for target in active_targets():
        last = SyncSample.objects.filter(target=target.name).order_by("-at").first()
        if not force and last and now - last.at < SAMPLE_EVERY:
            continue
        counts = dict(
            SyncRecord.objects.filter(
                target=target.name, state__in=[SyncState.PENDING, SyncState.FAILED]
            )
            .values_list("state")
            .annotate(n=Count("id"))
            .values_list("state", "n")
        )
        SyncSample.objects.create(
            at=now,
            target=target.name,
            pending=counts.get(SyncState.PENDING, 0) + outbox,
            failed=counts.get(SyncState.FAILED, 0),
        )
    SyncSample.objects.filter(at__lt=now - timedelta(days=1)).delete()


def _chart(target: str, now) -> dict:
    """An inline-SVG polyline of the pending count over the last hour."""
    samples = list(
        SyncSample.objects.filter(target=target, at__gte=now - CHART_WINDOW).values_list(
            "at", "pending"
        )
    )
    width, height = 600, 120
    peak = max([p for _, p in samples] + [1])
    points = []
    for at, pending in samples:
        x = width * (1 - (now - at) / CHART_WINDOW)
        y = height - 6 - (height - 12) * pending / peak
        points.append((round(x, 1), round(y, 1)))
    return {
        "points": " ".join(f"{x},{y}" for x, y in points),
        "dots": points,
        "peak": peak,
        "last": samples[-1][1] if samples else None,
        "count": len(samples),
        "width": width,
        "height": height,
    }


def dashboard() -> list[TargetPanel]:
    now = timezone.now()
    take_sample()
    active = {t.name: t for t in active_targets()}
    statuses = {s.target: s for s in SyncTargetStatus.objects.all()}
    names = list(active)
    if "weaviate" not in names:
        names.append("weaviate")  # shown even when disabled, to say so
    oldest_outbox = SyncOutbox.objects.aggregate(oldest=Min("created_at"))["oldest"]
    panels = []
    for name in names:
        target = active.get(name)
        status = statuses.get(name)
        grid = {t: [0] * len(STATES) for t in TYPE_NAMES}
        for object_type, state, n in (
            SyncRecord.objects.filter(target=name)
            .values_list("object_type", "state")
            .annotate(n=Count("id"))
            .values_list("object_type", "state", "n")
        ):
            if object_type in grid and state in STATES:
                grid[object_type][STATES.index(state)] = n
        oldest_pending = SyncRecord.objects.filter(target=name, state=SyncState.PENDING).aggregate(
            oldest=Min("changed_at")
        )["oldest"]
        oldest = min(
            [d for d in (oldest_pending, oldest_outbox if target else None) if d], default=None
        )
        if target is None:
            reason = (
                "Disabled in the admin (Weaviate configuration)."
                if name == "weaviate" and not weaviate_settings().enabled
                else "Not active."
            )
        else:
            reason = status.last_error if status else "Not checked yet: nothing synced so far."
        panels.append(
            TargetPanel(
                name=name,
                label=target.label if target else "Weaviate",
                active=target is not None,
                reachable=status.reachable if (status and target) else None,
                reason=reason,
                checked_at=status.last_checked_at if status else None,
                counts=[(t, row, sum(row)) for t, row in grid.items() if sum(row)],
                totals=[sum(row[i] for row in grid.values()) for i in range(len(STATES))],
                lag_seconds=(now - oldest).total_seconds() if oldest else None,
                failed=list(
                    SyncRecord.objects.filter(target=name, state=SyncState.FAILED).order_by(
                        "-changed_at"
                    )[:50]
                ),
                chart=_chart(name, now),
                runs=recent_runs(name),
            )
        )
    return panels


RUNS_SHOWN = 5


def recent_runs(target: str, limit: int = RUNS_SHOWN) -> list[ReconcileRun]:
    """The newest reconcile runs (`manage.py sync_weaviate`) of a target."""
    return list(ReconcileRun.objects.filter(target=target).order_by("-started_at", "-id")[:limit])


def retry_failed(
    *, target: str, object_type: str | None = None, object_id: str | None = None
) -> int:
    """Put failed records back in the queue (all of a target's, or one)."""
    records = SyncRecord.objects.filter(target=target, state=SyncState.FAILED)
    if object_type is not None:
        records = records.filter(object_type=object_type, object_id=object_id)
    count = records.update(
        state=SyncState.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        claim_token="",
        claimed_until=None,
    )
    if count:
        schedule_drain()
    return count
