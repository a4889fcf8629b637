"""Reads and small writes behind the sync dashboard."""

import itertools
import math
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
    lag_seconds: float | None  # age of the oldest change not yet in the index
    # Save to index over the last hour: the p95 in seconds and how many
    # writes it is taken over (each object's last write by a drain).
    p95_seconds: float | None = None
    writes_last_hour: int = 0
    index_lost_at: object = None  # when the index was last found to have lost objects
    index_lost_note: str = ""
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


# The chart's frame in SVG units: room on the left for the count labels, above
# for the count axis's title, below for the time labels and theirs.
CHART_WIDTH, CHART_HEIGHT = 600, 180
PLOT_LEFT, PLOT_TOP, PLOT_RIGHT, PLOT_BOTTOM = 56, 28, 588, 138
TIME_TICKS = [60, 45, 30, 15, 0]  # minutes ago


def _count_ticks(peak: int) -> list[int]:
    """0 up to a round number at or above `peak`, in at most four equal steps
    of 1, 2 or 5 times a power of ten, so every label is a whole count."""
    step, factors = 1, itertools.cycle((2, 2.5, 2))  # 1, 2, 5, 10, 20, 50 ...
    while math.ceil(peak / step) > 4:
        step = int(step * next(factors))
    return list(range(0, math.ceil(peak / step) * step + 1, step))


def _chart(target: str, now) -> dict:
    """An inline SVG of the pending count over the last hour: a polyline in a
    plot with a time axis (minutes ago) and a count axis, both labelled."""
    samples = list(
        SyncSample.objects.filter(target=target, at__gte=now - CHART_WINDOW).values_list(
            "at", "pending"
        )
    )
    peak = max([p for _, p in samples] + [1])
    counts = _count_ticks(peak)
    top_count = counts[-1]
    plot_width, plot_height = PLOT_RIGHT - PLOT_LEFT, PLOT_BOTTOM - PLOT_TOP

    def x_at(fraction_ago: float) -> float:
        return round(PLOT_LEFT + plot_width * (1 - fraction_ago), 1)

    def y_at(count: int) -> float:
        return round(PLOT_BOTTOM - plot_height * count / top_count, 1)

    points = [(x_at((now - at) / CHART_WINDOW), y_at(pending)) for at, pending in samples]
    return {
        "points": " ".join(f"{x},{y}" for x, y in points),
        "dots": points,
        "peak": peak,
        "last": samples[-1][1] if samples else None,
        "count": len(samples),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "plot": {"left": PLOT_LEFT, "top": PLOT_TOP, "right": PLOT_RIGHT, "bottom": PLOT_BOTTOM},
        "time_ticks": [
            (x_at(m / 60), "now" if m == 0 else f"{m} min ago" if m == 60 else str(m))
            for m in TIME_TICKS
        ],
        "count_ticks": [(y_at(n), n) for n in counts],
        "time_title": ((PLOT_LEFT + PLOT_RIGHT) / 2, CHART_HEIGHT - 6),
        "count_title": (8, PLOT_TOP - 12),
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
            oldest=Min("pending_since")
        )["oldest"]
        p95, writes = save_to_index_p95(name, now)
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
                lag_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else None,
                p95_seconds=p95,
                writes_last_hour=writes,
                index_lost_at=status.index_lost_at if status else None,
                index_lost_note=status.index_lost_note if status else "",
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


def save_to_index_p95(target: str, now) -> tuple[float | None, int]:
    """The 95th percentile (nearest rank) of the time from a save to the index
    holding it, over the objects a drain wrote in the last hour, in seconds;
    and how many writes that is."""
    latencies = SyncRecord.objects.filter(
        target=target, last_synced_at__gte=now - CHART_WINDOW, index_latency_ms__isnull=False
    )
    writes = latencies.count()
    if not writes:
        return None, 0
    rank = math.ceil(0.95 * writes) - 1
    p95 = latencies.order_by("index_latency_ms").values_list("index_latency_ms", flat=True)[rank]
    return p95 / 1000, writes


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
    now = timezone.now()
    count = records.update(
        state=SyncState.PENDING,
        attempts=0,
        next_attempt_at=now,
        pending_since=now,
        claim_token="",
        claimed_until=None,
    )
    if count:
        schedule_drain()
    return count
