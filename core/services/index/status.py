"""What the sync-status buttons show: one verdict per object and target.

green  in the index and up to date
amber  a change is pending or being retried
red    not in the index, or failed (the reason says which)
grey   sync disabled, not configured, or the index unreachable (the reason says which)

Buttons and list badges answer from the database alone (the sync records,
the outbox and each target's last known health), so a page never waits on an
index. Only the modal (which shows the stored document, and so sees a deletion
behind Agira's back) and Push touch the index.
"""

from dataclasses import dataclass, field

from django.db.models import Model

from core.models import SyncOutbox, SyncRecord, SyncState, SyncTargetStatus

from .config import sync_enabled, type_enabled, weaviate_settings
from .documents import OBJECT_TYPES, get_weaviate_type, object_uuid
from .engine import active_targets
from .targets.base import Target, TargetUnavailable

GREEN, AMBER, RED, GREY = "green", "amber", "red", "grey"
BOOTSTRAP = {GREEN: "success", AMBER: "warning", RED: "danger", GREY: "secondary"}


@dataclass
class TargetState:
    target: str  # "weaviate", "qdrant", or "" when no target is active
    label: str
    colour: str
    summary: str
    reason: str = ""
    record: SyncRecord | None = None
    document: dict | None = None

    @property
    def css(self) -> str:
        return BOOTSTRAP[self.colour]


@dataclass
class ObjectStatus:
    object_type: str
    object_id: str
    targets: list[TargetState] = field(default_factory=list)

    @property
    def primary(self) -> TargetState:
        return self.targets[0]

    @property
    def poll_seconds(self) -> int:
        """How often a button showing this should ask again: 0 once every
        target has settled (green, red or grey). A retry waits out its backoff
        (seconds to an hour), so asking often would only cost requests."""
        amber = [state for state in self.targets if state.colour == AMBER]
        if not amber:
            return 0
        retrying = all(state.record is not None and state.record.attempts for state in amber)
        return 10 if retrying else 2


def resolve(object_type: str, object_id: str) -> Model | None:
    """The object behind a (type, id) from a URL, or None."""
    spec = OBJECT_TYPES.get(object_type)
    if spec is None:
        return None
    return spec.load([object_id]).get(str(object_id))


def _off_state(object_type: str) -> TargetState | None:
    """Grey when Agira does not sync this object at all: sync switched off
    (AGIRA_SYNC_ENABLED=false) or its type left out (AGIRA_SYNC_TYPES)."""
    if not sync_enabled():
        return TargetState(
            "", "Index", GREY, "Sync is off", "Sync is switched off (AGIRA_SYNC_ENABLED=false)."
        )
    if not type_enabled(object_type):
        return TargetState(
            "",
            "Index",
            GREY,
            "Not synced",
            f"Objects of type {object_type} are not synced (AGIRA_SYNC_TYPES).",
        )
    return None


def _disabled_state() -> TargetState:
    config = weaviate_settings()
    reason = (
        "Sync is off: no index is enabled. Enable Weaviate in the admin "
        "(Weaviate configuration) or the embedded index (AGIRA_EMBEDDED_ENABLED)."
    )
    if not config.enabled and config.url and config.api_key:
        reason = "Weaviate is configured but disabled in the admin."
    return TargetState("", "Index", GREY, "Sync disabled", reason)


def object_status(instance: Model, *, with_document: bool = False) -> ObjectStatus:
    """The verdict for one object in every active target: from the database,
    or, `with_document`, by reading the object from each index."""
    object_type = get_weaviate_type(instance)
    object_id = str(instance.pk)
    status = ObjectStatus(object_type, object_id)
    off = _off_state(object_type)
    if off is not None:
        status.targets.append(off)
        return status
    targets = active_targets()
    if not targets:
        status.targets.append(_disabled_state())
        return status
    records = {
        r.target: r for r in SyncRecord.objects.filter(object_type=object_type, object_id=object_id)
    }
    in_outbox = SyncOutbox.objects.filter(object_type=object_type, object_id=object_id).exists()
    if not with_document:
        health = {
            h.target: h
            for h in SyncTargetStatus.objects.filter(target__in=[t.name for t in targets])
        }
        for target in targets:
            status.targets.append(
                _recorded_state(
                    target, records.get(target.name), in_outbox, health.get(target.name)
                )
            )
        return status
    for target in targets:
        status.targets.append(
            _target_state(target, object_type, object_id, records.get(target.name), in_outbox)
        )
    return status


_UNAVAILABLE_SUMMARY = {
    "auth": "API key rejected",
    "misconfigured": "Not configured",
    "disabled": "Sync disabled",
}


def _recorded_state(
    target: Target,
    record: SyncRecord | None,
    in_outbox: bool,
    health: SyncTargetStatus | None,
) -> TargetState:
    """The verdict from what the database knows: no index call."""
    label = target.label
    configured = getattr(getattr(target, "config", None), "configured", True)
    if not configured:
        return TargetState(
            target.name,
            label,
            GREY,
            "Not configured",
            f"{label} is not configured: set its URL in the admin.",
            record,
        )
    if health is not None and not health.reachable and health.last_error:
        summary = _UNAVAILABLE_SUMMARY.get(health.reason, "Unreachable")
        return TargetState(target.name, label, GREY, summary, health.last_error, record)
    return _verdict(TargetState(target.name, label, GREEN, "In sync", record=record), in_outbox)


def _verdict(state: TargetState, in_outbox: bool, *, document_found: bool | None = None):
    record = state.record
    if in_outbox or (record and record.state == SyncState.PENDING):
        state.colour, state.summary = AMBER, "Change pending"
        if record and record.attempts:
            state.summary = f"Retrying (attempt {record.attempts + 1})"
            state.reason = record.last_error
        return state
    if record and record.state == SyncState.FAILED:
        lost = record.last_error == LOST
        state.colour, state.reason = RED, record.last_error
        state.summary = "Not in the index" if lost else "Sync failed"
        return state
    if document_found is False:
        state.colour, state.summary = RED, "Not in the index"
        state.reason = (
            "The index does not hold this object."
            + (" It was removed behind Agira's back." if record and record.last_synced_at else "")
            + " Push it to write it now."
        )
        return state
    if document_found is None and (record is None or record.state != SyncState.SYNCED):
        state.colour, state.summary = RED, "Not in the index"
        state.reason = (
            "Agira has not written this object to the index yet. Push it to write it now."
        )
        return state
    if record is None or record.state != SyncState.SYNCED:
        # In the index (a reconcile or another process put it there) but
        # Agira has no record of writing it: in the index, possibly stale.
        state.summary = "In the index"
    return state


def _target_state(
    target: Target,
    object_type: str,
    object_id: str,
    record: SyncRecord | None,
    in_outbox: bool,
) -> TargetState:
    """The verdict after reading the object from the index (the modal)."""
    label = target.label
    try:
        with target.session():
            document = target.fetch(object_uuid(object_type, object_id))
    except TargetUnavailable as exc:
        summary = _UNAVAILABLE_SUMMARY.get(exc.reason, "Unreachable")
        return TargetState(target.name, label, GREY, summary, str(exc), record)
    if document is None and record is not None and record.state == SyncState.SYNCED:
        record = _lost(record)
    state = TargetState(target.name, label, GREEN, "In sync", record=record, document=document)
    return _verdict(state, in_outbox, document_found=document is not None)


LOST = (
    "The index does not hold this object: it was removed behind Agira's back. Push it to "
    "write it now, or run sync_weaviate."
)


def _lost(record: SyncRecord) -> SyncRecord:
    """An object found missing that the record calls synced: the record says
    so from now on, so the list's badge and the button agree with the modal
    (the sync records are the one source of both)."""
    SyncRecord.objects.filter(pk=record.pk, state=SyncState.SYNCED).update(
        state=SyncState.FAILED, last_error=LOST
    )
    record.state, record.last_error = SyncState.FAILED, LOST
    return record


def badge_states(object_type: str, object_ids: list) -> dict[str, str]:
    """Colour per object id for a list page, from the sync records alone:
    two queries whatever the number of rows (no index calls)."""
    ids = [str(i) for i in object_ids]
    targets = active_targets()
    if not targets or _off_state(object_type) is not None:
        return dict.fromkeys(ids, GREY)
    primary = targets[0].name
    colours = dict.fromkeys(ids, RED)  # no record: never written
    for object_id, state in SyncRecord.objects.filter(
        target=primary, object_type=object_type, object_id__in=ids
    ).values_list("object_id", "state"):
        colours[object_id] = {
            SyncState.SYNCED: GREEN,
            SyncState.PENDING: AMBER,
            SyncState.FAILED: RED,
            SyncState.DELETED: RED,
        }[state]
    for object_id in SyncOutbox.objects.filter(
        object_type=object_type, object_id__in=ids
    ).values_list("object_id", flat=True):
        colours[object_id] = AMBER
    return colours


_PLAIN_SUMMARY = {
    GREEN: "In the index",
    AMBER: "Waiting",
    RED: "A problem: your administrator can see it",
    GREY: "Not available now",
}


def plain_status(status: ObjectStatus) -> ObjectStatus:
    """The verdict as people who do not run Agira see it: one state, the
    primary target's colour, in plain words; no target names, hosts or raw
    errors (those are for staff, on the sync dashboard and in the admin). The
    stored document stays: it is the object's own data."""
    primary = status.primary
    plain = TargetState(
        primary.target,
        "index",
        primary.colour,
        _PLAIN_SUMMARY[primary.colour],
        record=primary.record,
        document=primary.document,
    )
    return ObjectStatus(status.object_type, status.object_id, [plain])
