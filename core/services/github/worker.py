"""The GitHub worker (seed 002): one run of `manage.py sync_github`.

A run has two phases.

1. **Which issues changed?** For each tracked repository, one incremental
   listing: `state=all`, `since` = the stored checkpoint, newest first, with
   the stored ETag. An unchanged repository answers 304: one request, not
   counted against the rate limit, nothing written. Otherwise the mappings
   whose issue (or pull request) was updated after what we last saw are
   queued (`sync_state=pending`) and the new ETag is stored. The checkpoint
   (an update time in GitHub's clock) moves on only when the listing since it
   outgrows half a page, so the URL, and with it the 304, stays the same from
   run to run. New links are pending from the start.
2. **Look at the queued ones**, at most `batch_size` per run, oldest first
   (the rest wait for the next run). Per mapping: the issue, its timeline
   (cross-referenced pull requests, in this or another repository; the commit
   of the last `closed` event and the pull requests it belongs to), and each
   linked pull request. Then, in one transaction:

   - closed as `completed` (or with no reason): the item moves to Testing,
     unless it is already at or past Testing: never backwards;
   - closed as `not_planned` or `duplicate`: the item is left alone and the
     mapping says why (`attention`);
   - reopened while the item is at or past Testing: the item keeps its status
     and is flagged (`attention=reopened`, shown on the item): whether the
     work goes back to Working, or the reopening is about something already
     released, is for a person to decide;
   - every linked pull request is stored as a mapping of kind `pr` (number,
     URL, title, state, merged, and whether it closed the issue).

   The index documents (`github_issue`, `github_pr`) go through the sync
   engine like every other object. Seed 002's rule: a document is written
   when it is not in the index yet, and afterwards only when the state
   changed. The worker refreshes what the document holds (title, body,
   labels, files, commits) only then, so the engine's content hash sees no
   change otherwise and writes nothing.

Errors (see `client.classify`): a deleted (404/410) or inaccessible (401/403)
issue marks its mapping failed with the reason, and it is not retried until
GitHub lists it as updated again; a transient error backs the mapping off
exponentially, and after `AGIRA_GITHUB_MAX_ATTEMPTS` it is failed; a rate
limit whose reset is further away than `max_rate_limit_wait`, a refused token
or an unreachable GitHub stop the run cleanly: what was done stays done,
checkpoints are saved, and the run says when to try again.

`dry_run` does everything in a transaction that is rolled back: it reports
what would happen and writes nothing (no run record either).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Min, OuterRef, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from urllib3.exceptions import ConnectTimeoutError

from core.models import (
    ExternalIssueMapping,
    ExternalKind,
    ExternalProvider,
    GitHubRepository,
    GitHubRunStatus,
    GitHubSyncRun,
    Item,
    ItemStatus,
    MappingAttention,
    MappingSyncState,
    SyncRecord,
    SyncState,
)
from core.services import runlock
from core.services.index.engine import active_targets, backoff_delay, mark_for_sync

from .client import (
    MISCONFIGURED,
    RATE_LIMITED,
    TRANSIENT,
    UNAUTHORIZED,
    Failure,
    GitHubAPI,
    Listing,
    PullRef,
    classify,
)
from .config import GitHubSettings, github_settings

logger = logging.getLogger("agira.github")

# Exit codes of `manage.py sync_github` (documented in docs/github.md).
EXIT_OK, EXIT_FAILED, EXIT_LOCKED, EXIT_UNAVAILABLE, EXIT_RATE_LIMITED = 0, 1, 2, 3, 4
LOCK_NAME = "github"
HEARTBEAT_EVERY = 5.0
MAX_COMMIT_MESSAGE = 1_000
# The checkpoint stays put while the listing since it fits in half a page, so that an
# unchanged repository keeps answering 304 to the very same URL.
ADVANCE_AFTER = 50
MAX_ERRORS_KEPT = 50
COMPLETED_REASONS = ("completed", "")
LEFT_ALONE_REASONS = {
    "not_planned": MappingAttention.NOT_PLANNED,
    "duplicate": MappingAttention.DUPLICATE,
}


class StopRun(Exception):
    """Nothing more can be done in this run (rate limit, token, GitHub down, PyGithub
    refusing GitHub's answers)."""

    def __init__(self, failure: Failure):
        super().__init__(failure.message)
        self.failure = failure


def _stops(failure: Failure, exc: BaseException) -> bool:
    """Whether a failure is the whole run's, not one link's or one repository's."""
    return failure.kind in (RATE_LIMITED, UNAUTHORIZED, MISCONFIGURED) or _unreachable(exc)


@dataclass
class PullData:
    """A pull request as fetched, before it is stored."""

    existing: ExternalIssueMapping | None
    ref: PullRef
    raw: dict
    closes: bool
    files: list[str] | None = None  # None: content not refreshed (state unchanged)
    commits: list[str] | None = None


@dataclass
class RunReport:
    exit_code: int
    status: str
    message: str = ""
    run_id: int | None = None
    counts: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    rate_limit_remaining: int | None = None
    next_run_after: datetime | None = None
    dry_run: bool = False


def run(
    *,
    repository: str | None = None,
    batch_size: int | None = None,
    dry_run: bool = False,
    config: GitHubSettings | None = None,
) -> RunReport:
    """One run; never raises for GitHub's errors (they are in the report)."""
    try:
        config = config or github_settings()
    except ValueError as exc:  # an AGIRA_GITHUB_* variable that does not parse
        return RunReport(EXIT_UNAVAILABLE, GitHubRunStatus.FAILED, str(exc), dry_run=dry_run)
    if problem := config.problem:
        logger.error("GitHub sync cannot run: %s", problem)
        return RunReport(EXIT_UNAVAILABLE, GitHubRunStatus.FAILED, problem, dry_run=dry_run)
    options = {"repository": repository, "batch_size": batch_size, "dry_run": dry_run}
    record = None
    if not dry_run:
        try:
            record, taken_over = runlock.claim(
                GitHubSyncRun,
                LOCK_NAME,
                stale_after=timedelta(seconds=settings.AGIRA_GITHUB_STALE_SECONDS),
                failed_status=GitHubRunStatus.FAILED,
                options=options,
            )
        except runlock.RunLocked as exc:
            message = f"Another GitHub sync is running: {exc}"
            logger.warning(message)
            return RunReport(EXIT_LOCKED, GitHubRunStatus.FAILED, message)
        if taken_over:
            logger.warning("GitHub sync: %s", taken_over)
    api = GitHubAPI(config)
    worker = Worker(api, record, batch_size=batch_size or config.batch_size, dry_run=dry_run)
    try:
        worker.work(repository)
    except Exception as exc:  # a bug, or the database: record it, then let it surface
        worker.finish(GitHubRunStatus.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        api.close()
    return worker.report


class Worker:
    def __init__(
        self, api: GitHubAPI, record: GitHubSyncRun | None, *, batch_size: int, dry_run: bool
    ):
        self.api = api
        self.record = record
        self.batch_size = max(1, batch_size)
        self.dry_run = dry_run
        self.counts: Counter = Counter()
        self.errors: list[str] = []
        self.report = RunReport(EXIT_OK, GitHubRunStatus.IN_PROGRESS, dry_run=dry_run)
        self._beat = time.monotonic()
        self._targets = [t.name for t in active_targets()]
        self._dry_queued: set[int] = set()  # what a dry run would have queued

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One transaction per write, rolled back in a dry run (no lock held while
        GitHub is asked anything)."""
        with transaction.atomic():
            yield
            if self.dry_run:
                transaction.set_rollback(True)

    # -- the run ------------------------------------------------------------------
    def work(self, repository: str | None) -> None:
        prefix = "[dry run] " if self.dry_run else ""
        logger.info("%sGitHub sync started%s", prefix, f" for {repository}" if repository else "")
        try:
            self.scan(repository)
            self.process_due(repository)
        except StopRun as stop:
            failure = stop.failure
            if failure.kind == RATE_LIMITED:
                self.report.next_run_after = failure.retry_at
                when = (
                    f"; run again after {failure.retry_at:%Y-%m-%d %H:%M:%S} UTC"
                    if failure.retry_at
                    else ""
                )
                self.finish(GitHubRunStatus.RATE_LIMITED, f"Stopped by GitHub's rate limit{when}.")
            else:
                self.finish(GitHubRunStatus.FAILED, f"Stopped: {failure.message}.")
            return
        failed = self.counts["failed"] + self.counts["backoff"]
        repositories = self.counts["repositories_failed"]
        problems = []
        if failed:
            problems.append(f"{failed} mapping(s) failed or will be retried.")
        if repositories:
            problems.append(f"{repositories} repository(ies) failed and will be retried later.")
        self.finish(
            GitHubRunStatus.PARTIAL if problems else GitHubRunStatus.COMPLETED, " ".join(problems)
        )

    def finish(self, status: str, message: str) -> None:
        message = self.api.scrub(message)
        remaining, _reset = self.api.rate_limit
        exit_code = {
            GitHubRunStatus.COMPLETED: EXIT_OK,
            GitHubRunStatus.PARTIAL: EXIT_FAILED,
            GitHubRunStatus.RATE_LIMITED: EXIT_RATE_LIMITED,
        }.get(status, EXIT_UNAVAILABLE)
        self.report.__dict__.update(
            exit_code=exit_code,
            status=status,
            message=message,
            counts=self.counts,
            errors=self.errors,
            requests=self.api.requests,
            rate_limit_remaining=remaining,
            run_id=self.record.pk if self.record else None,
        )
        log = logger.info if status == GitHubRunStatus.COMPLETED else logger.warning
        log(
            "GitHub sync %s: %s requests, %s%s",
            status,
            self.api.requests,
            dict(self.counts) or "nothing to do",
            f" ({message})" if message else "",
        )
        if self.record is None:
            return
        GitHubSyncRun.objects.filter(pk=self.record.pk).update(
            lock=None,
            status=status,
            error=message[:4000],
            counts=dict(self.counts),
            errors=self.errors[:MAX_ERRORS_KEPT],
            requests=self.api.requests,
            rate_limit_remaining=remaining,
            rate_limit_reset=_reset,
            next_run_after=self.report.next_run_after,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )

    def heartbeat(self) -> None:
        if self.record is not None and time.monotonic() - self._beat > HEARTBEAT_EVERY:
            self._beat = time.monotonic()
            runlock.heartbeat(self.record, counts=dict(self.counts), requests=self.api.requests)

    def error(self, subject: str, failure: Failure) -> None:
        line = self.api.scrub(f"{subject}: {failure.message}")
        self.errors.append(line)
        logger.warning("GitHub sync: %s", line)

    # -- phase 1: which issues changed? -----------------------------------------------
    def scan(self, only: str | None) -> None:
        mappings = ExternalIssueMapping.objects.filter(provider=ExternalProvider.GITHUB)
        if only:
            mappings = mappings.filter(repository=only)
        names = sorted(set(mappings.values_list("repository", flat=True)))
        with_issues = set(
            mappings.filter(kind=ExternalKind.ISSUE).values_list("repository", flat=True)
        )
        states = {r.full_name: r for r in GitHubRepository.objects.filter(full_name__in=names)}
        now = timezone.now()
        for name in names:
            state = states.get(name)
            if state is not None and state.next_attempt_at and state.next_attempt_at > now:
                logger.info("%s: backing off until %s", name, state.next_attempt_at)
                self.counts["repositories_waiting"] += 1
                continue
            # A repository of pull requests only (forks, mostly): those are refreshed with
            # the issue they reference, so listing them too is only for a PR that changed
            # while its issue did not, and waits for the slower schedule (`--repo` lists
            # it regardless).
            slow = name not in with_issues
            if slow and not only and not self.slow_repository_due(name, state, now):
                self.counts["repositories_later"] += 1
                continue
            self.heartbeat()
            self.scan_repository(name, state, slow=slow)

    def slow_repository_due(self, name: str, state: GitHubRepository | None, now: datetime) -> bool:
        seen = state.last_checked_at if state is not None else None
        if seen is None:
            # Never listed: its links were looked at when their issue synced.
            seen = ExternalIssueMapping.objects.filter(repository=name).aggregate(
                oldest=Min("last_synced_at")
            )["oldest"]
        interval = timedelta(minutes=self.api.config.pr_repository_minutes)
        return seen is None or seen <= now - interval

    def scan_repository(self, name: str, state: GitHubRepository | None, *, slow: bool) -> None:
        state = state or GitHubRepository(full_name=name)
        first_page: list[dict] = []
        try:
            if state.github_id is None:
                # First sight: the repository's id, so that listings never depend on
                # its name; then the newest update becomes the checkpoint (GitHub's
                # clock, not ours) and the listing since it gives the ETag the next
                # runs send.
                found = self.api.repository(name)
                state.github_id = found["id"]
                current = (found.get("full_name") or name).lower()
                if current != name:
                    with self.writing():
                        state = self.follow_rename(state, name, current)
                        state.save()
                    name = state.full_name
            listing = self.api.list_updated(
                state.github_id, since=state.checkpoint, etag=state.etag
            )
            if not listing.not_modified and state.checkpoint is None and listing.issues:
                # New links are pending anyway, but links synced before the repository
                # was first listed (pull requests found through an issue) are queued from
                # this newest page if they changed since.
                first_page = listing.issues
                state.checkpoint = _newest(listing.issues)
                listing = self.api.list_updated(state.github_id, since=state.checkpoint, etag="")
        except Exception as exc:
            failure = classify(exc)  # re-raises what is not GitHub's (a bug)
            if _stops(failure, exc):
                raise StopRun(failure) from exc
            self.repository_failed(name, state, failure)
            return
        self.counts["repositories"] += 1
        if listing.not_modified:
            self.counts["repositories_unchanged"] += 1
            logger.debug("%s: not modified", name)
            if slow or state.failures or state.last_error:
                # Written only here: an unchanged repository with issue links costs no
                # write; one of pull requests only must remember when it was listed.
                with self.writing():
                    GitHubRepository.objects.filter(pk=state.pk).update(
                        **_healthy(), last_checked_at=timezone.now()
                    )
            return
        latest = _updates(listing.issues)
        current_name = name
        for issue in listing.issues:
            current_name = _repository_from_url(issue.get("repository_url")) or current_name
        newest = _newest(listing.issues)
        advance = len(latest) > ADVANCE_AFTER and newest and newest != state.checkpoint
        if advance:
            # The listing since the checkpoint outgrew half a page: move it on, and ask
            # once for the new URL's ETag, so the next unchanged run is a 304 again. What
            # that answer lists is queued too (it may hold an update made meanwhile).
            try:
                follow_up = self.api.list_updated(state.github_id, since=newest, etag="")
                latest = _updates(follow_up.issues) | latest
            except Exception as exc:
                failure = classify(exc)
                if _stops(failure, exc):
                    raise StopRun(failure) from exc
                follow_up = Listing(not_modified=False, etag="")  # next run lists again
        with self.writing():
            if current_name != name:
                state = self.follow_rename(state, name, current_name)
                name = state.full_name
            queued = self.queue_changed(name, _updates(first_page) | latest)
            state.etag = listing.etag
            if advance:
                state.checkpoint, state.etag = newest, follow_up.etag
            state.last_checked_at = timezone.now()
            for key, value in _healthy().items():
                setattr(state, key, value)
            state.save()
        logger.info("%s: %s updated on GitHub, %s link(s) queued", name, len(latest), queued)

    def repository_failed(self, name: str, state: GitHubRepository, failure: Failure) -> None:
        """GitHub does not answer for a repository (deleted, no access, down): recorded
        on it, and it backs off like a failing link. Never given up: a repository may
        come back, and at the cap it costs one request a day."""
        attempts = state.failures + 1
        delay = backoff_delay(
            attempts,
            base=settings.AGIRA_GITHUB_BACKOFF_SECONDS,
            cap=settings.AGIRA_GITHUB_BACKOFF_MAX_SECONDS,
        )
        self.counts["repositories_failed"] += 1
        self.error(f"listing {name}", failure)
        with self.writing():
            GitHubRepository.objects.update_or_create(
                full_name=name,
                defaults={
                    "last_error": self.api.scrub(failure.message),
                    "failures": attempts,
                    "next_attempt_at": timezone.now() + delay,
                },
            )
        logger.warning("%s: backing off for %s (failure %s)", name, delay, attempts)

    def queue_changed(self, name: str, latest: dict[int, datetime]) -> int:
        """Queue the mappings whose issue GitHub updated after we last saw it."""
        queued = []
        candidates = ExternalIssueMapping.objects.filter(repository=name, number__in=list(latest))
        for pk, number, seen, state in candidates.values_list(
            "pk", "number", "external_updated_at", "sync_state"
        ):
            if seen is not None and seen >= latest[number]:
                continue
            # Backing-off links keep their schedule; failed ones come back when listed.
            if state in (MappingSyncState.OK, MappingSyncState.FAILED):
                queued.append((pk, latest[number]))
        for pk, updated in queued:
            # The listed time is stored now: a failed link is not revived again by
            # unrelated activity in its repository, only by its own next update.
            ExternalIssueMapping.objects.filter(pk=pk).update(
                sync_state=MappingSyncState.PENDING,
                sync_attempts=0,
                next_attempt_at=None,
                external_updated_at=updated,
            )
        if self.dry_run:
            self._dry_queued.update(pk for pk, _ in queued)
        self.counts["queued"] += len(queued)
        return len(queued)

    def follow_rename(self, state: GitHubRepository, old: str, new: str) -> GitHubRepository:
        """GitHub knows `old` as `new` now (renamed or transferred): record it and move
        the links. Returns the repository's state under its new name (not yet saved)."""
        logger.warning("Repository %s is now %s: links moved", old, new)
        self.counts["repositories_renamed"] += 1
        existing = GitHubRepository.objects.filter(full_name=new).exclude(pk=state.pk).first()
        if existing is not None:  # both names were tracked: keep one
            if state.pk:
                state.delete()
            state = existing
        state.previous_names = sorted({*state.previous_names, old})
        state.full_name = new
        moved = ExternalIssueMapping.objects.filter(repository=old)
        # A link the item already has under the new name wins over its old-name twin.
        twins = moved.filter(
            Exists(
                ExternalIssueMapping.objects.filter(
                    item=OuterRef("item"), repository=new, number=OuterRef("number")
                )
            )
        )
        if twins.exists():
            logger.warning("%s: links already under %s, old ones removed", old, new)
            twins.delete()
        pks = list(moved.values_list("pk", flat=True))
        moved.update(repository=new)
        mark_for_sync(ExternalIssueMapping.objects.filter(pk__in=pks))  # external keys changed
        return state

    # -- phase 2: the queued mappings ---------------------------------------------------
    def due(self, only: str | None):
        now = timezone.now()
        qs = ExternalIssueMapping.objects.filter(provider=ExternalProvider.GITHUB).filter(
            Q(sync_state=MappingSyncState.PENDING)
            | Q(sync_state=MappingSyncState.BACKOFF, next_attempt_at__lte=now)
            | Q(pk__in=self._dry_queued)
        )
        if only:
            qs = qs.filter(repository=only)
        return qs.order_by(F("next_attempt_at").asc(nulls_first=True), "pk")

    def process_due(self, only: str | None) -> None:
        due = self.due(only)
        batch = list(due.select_related("item__project")[: self.batch_size])
        waiting = due.count() - len(batch)
        if waiting > 0:
            self.counts["deferred"] += waiting
            logger.info(
                "%s more link(s) wait for the next run (--batch-size %s)", waiting, self.batch_size
            )
        for queued in batch:
            self.heartbeat()
            # Fresh: an earlier link of this run may have stored this one (a PR it
            # links), and a person may have removed it meanwhile.
            mapping = due.select_related("item__project").filter(pk=queued.pk).first()
            if mapping is None:
                continue
            self.counts["mappings"] += 1
            try:
                if mapping.kind == ExternalKind.PR:
                    self.sync_pull_mapping(mapping)
                else:
                    self.sync_issue_mapping(mapping)
            except StopRun:
                raise
            except Exception as exc:
                self.fail(mapping, exc)

    def fail(self, mapping: ExternalIssueMapping, exc: Exception) -> None:
        failure = classify(exc)  # re-raises what is not GitHub's (a bug)
        if failure.kind in (RATE_LIMITED, MISCONFIGURED) or _unreachable(exc):
            raise StopRun(failure) from exc  # the run's trouble, not the link's: no charge
        now = timezone.now()
        values = {"sync_error": failure.message, "last_synced_at": now}
        if failure.kind == TRANSIENT:
            attempts = mapping.sync_attempts + 1
            if attempts >= settings.AGIRA_GITHUB_MAX_ATTEMPTS:
                values.update(
                    sync_state=MappingSyncState.FAILED,
                    sync_attempts=attempts,
                    next_attempt_at=None,
                    sync_error=f"gave up after {attempts} attempts: {failure.message}",
                )
                self.counts["failed"] += 1
            else:
                delay = backoff_delay(
                    attempts,
                    base=settings.AGIRA_GITHUB_BACKOFF_SECONDS,
                    cap=settings.AGIRA_GITHUB_BACKOFF_MAX_SECONDS,
                )
                values.update(
                    sync_state=MappingSyncState.BACKOFF,
                    sync_attempts=attempts,
                    next_attempt_at=now + delay,
                )
                self.counts["backoff"] += 1
        else:
            values.update(sync_state=MappingSyncState.FAILED, next_attempt_at=None)
            self.counts["failed"] += 1
        # Bookkeeping only: the document does not change, so no signal and no outbox row.
        with self.writing():
            ExternalIssueMapping.objects.filter(pk=mapping.pk).update(**values)
        self.error(str(mapping), Failure(failure.kind, values["sync_error"], failure.status))
        if failure.kind == UNAUTHORIZED:
            raise StopRun(failure)

    def sync_issue_mapping(self, mapping: ExternalIssueMapping) -> None:
        issue = self.api.issue(mapping.repository, mapping.number)
        raw = issue.raw_data
        if raw.get("pull_request"):
            logger.info("%s is a pull request: linked as one", mapping)
            mapping.kind = ExternalKind.PR
            return self.sync_pull_mapping(mapping)
        timeline = self.api.timeline(issue)
        linked, closing = self.linked_pulls(mapping.repository, raw, timeline)
        pulls = [self.fetch_linked(mapping.item, ref, closes=ref in closing) for ref in linked]
        with self.writing():
            current = ExternalIssueMapping.objects.select_for_update().filter(pk=mapping.pk).first()
            if current is None:
                logger.info("%s was removed while it synced: skipped", mapping)
                return
            item = Item.objects.select_for_update().get(pk=current.item_id)
            self.apply_issue(current, item, raw)
            for data in pulls:
                if data is not None:
                    self.store_pull(item, data)

    def apply_issue(self, mapping: ExternalIssueMapping, item: Item, raw: dict) -> None:
        state, reason = raw.get("state") or "", raw.get("state_reason") or ""
        was_state = mapping.state
        status_changed = (mapping.state, mapping.state_reason) != (state, reason)
        if status_changed or not self.in_index(mapping):
            _copy_content(mapping, raw)
            self.counts["documents_refreshed"] += 1
        mapping.state, mapping.state_reason = state, reason
        _copy_bookkeeping(mapping, raw)

        testing = ItemStatus.rank(ItemStatus.TESTING)
        at_or_past_testing = ItemStatus.rank(item.status) >= testing
        if state == "closed" and reason in COMPLETED_REASONS:
            mapping.attention = MappingAttention.NONE
            if not at_or_past_testing:
                logger.info("%s closed: item #%s %s → Testing", mapping, item.pk, item.status)
                item.status = ItemStatus.TESTING
                item.save(update_fields=["status", "updated_at"])
                self.counts["items_moved"] += 1
            else:
                logger.info("%s closed: item #%s stays %s", mapping, item.pk, item.status)
        elif state == "closed":
            mapping.attention = LEFT_ALONE_REASONS.get(reason, MappingAttention.NONE)
            logger.info("%s closed as %s: item #%s left %s", mapping, reason, item.pk, item.status)
            self.counts["left_alone"] += 1
        elif state == "open" and (was_state == "closed" or reason == "reopened"):
            if at_or_past_testing:
                mapping.attention = MappingAttention.REOPENED
                logger.warning("%s reopened: item #%s (%s) flagged", mapping, item.pk, item.status)
                self.counts["flagged_reopened"] += 1
            else:
                mapping.attention = MappingAttention.NONE
        elif state == "open":
            mapping.attention = MappingAttention.NONE
        mapping.save()
        self.counts["issues_synced"] += 1

    # -- pull requests ----------------------------------------------------------------
    def linked_pulls(
        self, repository: str, issue: dict, timeline: list
    ) -> tuple[list[PullRef], set[PullRef]]:
        """The pull requests an issue's timeline links, and those that closed it."""
        linked: list[PullRef] = []
        closing_commit = None
        for event in timeline:
            data = event.raw_data
            if data.get("event") == "cross-referenced":
                source = (data.get("source") or {}).get("issue") or {}
                if source.get("pull_request"):
                    repo = (source.get("repository") or {}).get(
                        "full_name"
                    ) or _repository_from_url(source.get("repository_url"))
                    linked.append(PullRef(repo or repository, int(source["number"])))
            elif data.get("event") == "closed":
                commit = data.get("commit_id")
                commit_repo = _repository_from_url(data.get("commit_url")) or repository
                closing_commit = (commit_repo, commit) if commit else None
            elif data.get("event") == "reopened":
                closing_commit = None
        closing: set[PullRef] = set()
        if issue.get("state") == "closed" and closing_commit:
            closing = set(self.closing_pulls(*closing_commit))
        for ref in closing:
            if ref not in linked:
                linked.append(ref)
        return list(dict.fromkeys(linked)), closing

    def closing_pulls(self, repository: str, sha: str) -> list[PullRef]:
        """The pull requests of the commit that closed an issue ([] if GitHub cannot say)."""
        try:
            return self.api.commit_pulls(repository, sha)
        except Exception as exc:
            failure = classify(exc)
            if _stops(failure, exc):
                raise StopRun(failure) from exc
            if failure.kind == TRANSIENT:
                raise
            self.error(f"pull requests of commit {sha[:12]} in {repository}", failure)
            return []

    def fetch_linked(self, item: Item, ref: PullRef, *, closes: bool) -> PullData | None:
        """A linked pull request, or None if it cannot be read (noted in the run's errors)."""
        existing = ExternalIssueMapping.objects.filter(
            item=item, repository=ref.repository, number=ref.number
        ).first()
        try:
            return self.fetch_pull(existing, ref, closes=closes)
        except Exception as exc:
            failure = classify(exc)
            if _stops(failure, exc):
                raise StopRun(failure) from exc
            if failure.kind == TRANSIENT:
                raise  # the issue's mapping backs off and tries again
            self.error(f"{ref.repository}!{ref.number} (linked to item #{item.pk})", failure)
            return None

    def fetch_pull(
        self, existing: ExternalIssueMapping | None, ref: PullRef, *, closes: bool
    ) -> PullData:
        pull = self.api.pull(ref.repository, ref.number)
        raw = pull.raw_data
        known = existing is not None and existing.kind == ExternalKind.PR
        changed = not known or (existing.state, existing.merged) != (
            raw.get("state"),
            bool(raw.get("merged")),
        )
        data = PullData(existing, ref, raw, closes)
        if changed or not self.in_index(existing):
            files, more_files = self.api.pull_files(pull, settings.AGIRA_GITHUB_MAX_FILES)
            messages, more_commits = self.api.pull_commit_messages(
                pull, settings.AGIRA_GITHUB_MAX_COMMITS
            )
            data.files = _capped(files, more_files, "files")
            data.commits = _capped([_cap_message(m) for m in messages], more_commits, "commits")
        return data

    def store_pull(self, item: Item, data: PullData) -> None:
        ref, raw = data.ref, data.raw
        existing = None
        if data.existing is not None:
            existing = (
                ExternalIssueMapping.objects.select_for_update().filter(pk=data.existing.pk).first()
            )
        mapping = existing or ExternalIssueMapping(
            item=item,
            provider=ExternalProvider.GITHUB,
            repository=ref.repository,
            number=ref.number,
            kind=ExternalKind.PR,
        )
        before = _pull_fields(mapping) if existing is not None else None
        if data.files is not None:
            _copy_content(mapping, raw)
            mapping.changed_files = data.files
            mapping.commit_messages = data.commits
        mapping.kind = ExternalKind.PR
        mapping.state = raw.get("state") or ""
        mapping.merged = bool(raw.get("merged"))
        # Once a PR closed an issue of the item it keeps saying so (an item may link
        # several issues; one closing does not undo another's).
        mapping.closes_issue = data.closes or mapping.closes_issue
        if data.files is None and _pull_fields(mapping) == before:
            return  # nothing changed: no write, no index traffic
        _copy_bookkeeping(mapping, raw)
        mapping.save()
        self.counts["prs_linked" if existing is None else "prs_updated"] += 1
        logger.info(
            "%s %s on item #%s (%s%s%s)",
            mapping,
            "linked" if existing is None else "updated",
            item.pk,
            mapping.state,
            ", merged" if mapping.merged else "",
            ", closed the issue" if mapping.closes_issue else "",
        )

    def sync_pull_mapping(self, mapping: ExternalIssueMapping) -> None:
        """A pull request GitHub listed as updated (or one linked by hand)."""
        ref = PullRef(mapping.repository, mapping.number)
        data = self.fetch_pull(mapping, ref, closes=mapping.closes_issue)
        with self.writing():
            self.store_pull(mapping.item, data)
            # An unchanged pull request is not saved; its queue entry is cleared regardless.
            ExternalIssueMapping.objects.filter(pk=mapping.pk).update(
                sync_state=MappingSyncState.OK,
                sync_error="",
                sync_attempts=0,
                next_attempt_at=None,
                external_updated_at=_parse_time(data.raw.get("updated_at")),
                last_synced_at=timezone.now(),
            )

    # -- helpers ---------------------------------------------------------------------------
    def in_index(self, mapping: ExternalIssueMapping | None) -> bool:
        """Whether every active target holds the mapping's document (as far as Agira knows)."""
        if mapping is None or mapping.pk is None:
            return False
        if not self._targets:
            return True  # no index: nothing to create
        object_type = "github_pr" if mapping.kind == ExternalKind.PR else "github_issue"
        held = SyncRecord.objects.filter(
            object_type=object_type,
            object_id=str(mapping.pk),
            target__in=self._targets,
            state=SyncState.SYNCED,
        ).count()
        return held == len(self._targets)


def _unreachable(exc: BaseException) -> bool:
    """GitHub cannot be reached at all (refused, no route, no name): stop rather than
    charge every link. A read timeout or a dropped answer is the link's own trouble."""
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.ReadTimeout):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, ConnectTimeoutError)  # NewConnectionError, NameResolutionError too


def _healthy() -> dict:
    """A repository's fields once GitHub answers for it again."""
    return {"last_error": "", "failures": 0, "next_attempt_at": None}


def _updates(issues: list[dict]) -> dict[int, datetime]:
    """Issue number → its update time, from a listing."""
    out = {}
    for issue in issues:
        updated = _parse_time(issue.get("updated_at"))
        if updated is not None:
            out[int(issue["number"])] = updated
    return out


def _newest(issues: list[dict]) -> datetime | None:
    return max(filter(None, (_parse_time(i.get("updated_at")) for i in issues)), default=None)


def _parse_time(value) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = parse_datetime(str(value))
    return parsed.replace(tzinfo=UTC) if parsed and parsed.tzinfo is None else parsed


def _repository_from_url(url: str | None) -> str:
    """`owner/name` (lower case, as links store it) from an API URL such as
    https://api.github.com/repos/owner/name."""
    if not url or "/repos/" not in url:
        return ""
    parts = url.split("/repos/", 1)[1].split("/")
    return "/".join(parts[:2]).lower() if len(parts) >= 2 else ""


def _copy_content(mapping: ExternalIssueMapping, raw: dict) -> None:
    mapping.title = (raw.get("title") or "")[:500]
    mapping.body = raw.get("body") or ""
    mapping.labels = [
        label.get("name", "") if isinstance(label, dict) else str(label)
        for label in raw.get("labels") or []
    ]
    mapping.url = (raw.get("html_url") or mapping.url)[:500]
    mapping.external_created_at = _parse_time(raw.get("created_at"))
    mapping.closed_at = _parse_time(raw.get("closed_at"))


def _copy_bookkeeping(mapping: ExternalIssueMapping, raw: dict) -> None:
    mapping.external_id = raw.get("id") or mapping.external_id
    mapping.external_updated_at = _parse_time(raw.get("updated_at"))
    mapping.last_synced_at = timezone.now()
    mapping.sync_state = MappingSyncState.OK
    mapping.sync_error = ""
    mapping.sync_attempts = 0
    mapping.next_attempt_at = None


def _pull_fields(mapping: ExternalIssueMapping) -> tuple:
    return (mapping.state, mapping.merged, mapping.closes_issue, mapping.kind)


def _capped(values: list[str], more: bool, noun: str) -> list[str]:
    return [*values, f"[more {noun} not listed]"] if more else list(values)


def _cap_message(message: str) -> str:
    if len(message) <= MAX_COMMIT_MESSAGE:
        return message
    cut = message[:MAX_COMMIT_MESSAGE]
    return f"{cut} [truncated: {MAX_COMMIT_MESSAGE:,} of {len(message):,} characters]"
