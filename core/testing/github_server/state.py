"""What the GitHub-shaped test server knows: repositories, issues and pull requests (one
numbering per repository, as on GitHub), their timelines, commits, the clock, the rate
limit counter, queued faults and the request log; and how each of them looks as JSON.

Every public method of :class:`State` takes the state's lock, so the HTTP threads and the
test thread can use it at the same time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

START = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_LOGIN = "octocat"
RATE_LIMIT = 5000
RATE_WINDOW_SECONDS = 3600

DOCS = "https://docs.github.com/rest"
RATE_LIMIT_DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
PRIMARY_RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"

ISSUE_FIELDS = frozenset({"title", "body", "state", "state_reason", "labels"})
PULL_FIELDS = frozenset(
    {
        "title",
        "body",
        "state",
        "state_reason",
        "labels",
        "merged",
        "merge_commit_sha",
        "files",
        "commits",
        "draft",
        "head_repo",
        "head_ref",
    }
)
STATE_REASONS = frozenset({"completed", "not_planned", "duplicate", "reopened"})

_KNOWN_LABEL_COLORS = {
    "bug": "d73a4a",
    "documentation": "0075ca",
    "duplicate": "cfd3d7",
    "enhancement": "a2eeef",
    "good first issue": "7057ff",
    "help wanted": "008672",
    "invalid": "e4e669",
    "question": "d876e3",
    "wontfix": "ffffff",
}


class SameRepo:
    """The default ``head_repo`` of a pull request: a branch of the base repository."""

    def __repr__(self) -> str:
        return "SAME_REPO"


SAME_REPO = SameRepo()


# -- small helpers ---------------------------------------------------------------------------
def iso(moment: datetime | None) -> str | None:
    """GitHub's timestamp format: ``2026-01-01T00:00:05Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str) -> datetime:
    """An ISO-8601 timestamp or date as GitHub accepts it for ``since``; naive means UTC."""
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # An unencoded "+01:00" in a query string arrives as " 01:00".
    text = re.sub(r"(\d) (\d{2}:?\d{2})$", r"\1+\2", text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def node_id(kind: str, number: int) -> str:
    """The legacy global node id GitHub still serves (``MDU6SXNzdWUx`` for Issue 1)."""
    return base64.b64encode(f"{len(kind):02d}:{kind}{number}".encode()).decode()


def fake_sha(*parts: object) -> str:
    return hashlib.sha1("/".join(str(p) for p in parts).encode(), usedforsecurity=False).hexdigest()


def error_body(message: str, documentation_url: str = DOCS) -> dict[str, str]:
    return {"message": message, "documentation_url": documentation_url}


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


# -- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered. ``path`` has neither the query nor the
    ``/api/v3`` prefix; ``authorized`` is whether it passed the token check (always true
    when the server has no token)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    if_none_match: str | None
    authorized: bool


@dataclass
class Label:
    id: int
    name: str
    color: str
    description: str | None = None


@dataclass
class Commit:
    sha: str
    message: str
    author: str
    date: datetime
    pulls: list[int] = field(default_factory=list)


@dataclass
class Event:
    """A timeline entry: ``closed``, ``reopened``, ``merged`` (also in the issue events
    listing) or ``cross-referenced`` (timeline only; ``source`` is (repo id, number))."""

    id: int
    kind: str
    actor: str
    created_at: datetime
    commit_id: str | None = None
    repo_id: int | None = None  # where commit_id lives
    state_reason: str | None = None
    source: tuple[int, int] | None = None


@dataclass
class Pull:
    id: int
    head_repo_id: int | None  # None: the fork was deleted
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    draft: bool = False


@dataclass
class Issue:
    repo_id: int
    number: int
    id: int
    title: str
    body: str | None
    user: str
    labels: list[str]
    state: str
    state_reason: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None
    events: list[Event] = field(default_factory=list)
    deleted: int | None = None  # 404 or 410 once deleted
    pull: Pull | None = None


@dataclass
class Repo:
    id: int
    full_name: str
    created_at: datetime
    description: str | None = None
    private: bool = False
    default_branch: str = "main"
    fork: bool = False
    parent_id: int | None = None
    next_number: int = 1
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]


@dataclass
class Fault:
    """A queued response that replaces the next ``times`` matching requests."""

    pattern: re.Pattern[str]
    status: int
    times: int
    kind: str = "fail"  # fail | primary | secondary | forbid
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    reset_in: int = 600
    retry_after: int | None = None


# -- the state -------------------------------------------------------------------------------
class State:
    def __init__(self, *, token: str | None, login: str, rate_limit: int) -> None:
        self.lock = threading.RLock()
        self.initial_token = token
        self.token = token
        self.login = login
        self.rate_limit_total = rate_limit
        # The request log; reset() empties this very list so references to it stay valid.
        self.requests: list[RequestRecord] = []
        self._clear()

    def _clear(self) -> None:
        self.now = START
        self.repos: dict[int, Repo] = {}
        self.names: dict[str, int] = {}  # lower-case full name -> repo id
        self.old_names: dict[str, int] = {}  # lower-case former full name -> repo id
        self.users: dict[str, int] = {}
        self.faults: list[Fault] = []
        # Set: every URL in the answers names this host instead of the one the request
        # used (GitHub Enterprise reached through an alias, a proxy in between).
        self.public_host: str | None = None
        self.rate_used = 0
        self.rate_reset = int(time.time()) + RATE_WINDOW_SECONDS
        self._ids = {
            "repo": 700_000_000,
            "issue": 3_000_000_000,
            "pull": 1_500_000_000,
            "event": 9_000_000_000,
            "label": 6_000_000_000,
            "user": 1000,
        }

    def reset(self) -> None:
        with self.lock:
            self._clear()
            self.token = self.initial_token
            self.requests.clear()

    def _next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    # -- clock ---------------------------------------------------------------------------
    def advance(self, seconds: float = 1) -> datetime:
        with self.lock:
            self.now += timedelta(seconds=seconds)
            return self.now

    def _tick(self) -> datetime:
        return self.advance(1)

    # -- users and labels --------------------------------------------------------------------
    def user_id(self, login: str) -> int:
        with self.lock:
            key = login.lower()
            if key not in self.users:
                self.users[key] = self._next_id("user")
            return self.users[key]

    def _label(self, repo: Repo, spec: str | dict[str, Any]) -> str:
        if isinstance(spec, dict):
            name = str(spec["name"])
            color, description = spec.get("color"), spec.get("description")
        else:
            name, color, description = str(spec), None, None
        label = repo.labels.get(name.lower())
        if label is None:
            color = color or _KNOWN_LABEL_COLORS.get(name.lower()) or fake_sha(name)[:6]
            label = Label(self._next_id("label"), name, color, description)
            repo.labels[name.lower()] = label
        else:
            label.color = color or label.color
            label.description = description if description is not None else label.description
        return label.name

    def _labels(self, repo: Repo, specs: Iterable[str | dict[str, Any]]) -> list[str]:
        if isinstance(specs, str):
            specs = [specs]
        return [self._label(repo, spec) for spec in specs]

    # -- repositories ------------------------------------------------------------------------
    def repo(self, full_name: str) -> Repo:
        with self.lock:
            repo_id = self.names.get(full_name.lower())
            if repo_id is None:
                raise LookupError(f"no repository {full_name!r} on the test server")
            return self.repos[repo_id]

    def find_repo(self, full_name: str) -> tuple[Repo | None, Repo | None]:
        """(the repository now named so, the renamed repository that had this name)."""
        with self.lock:
            key = full_name.lower()
            if key in self.names:
                return self.repos[self.names[key]], None
            if key in self.old_names:
                return None, self.repos.get(self.old_names[key])
            return None, None

    def add_repo(
        self,
        full_name: str,
        *,
        description: str | None = None,
        private: bool = False,
        default_branch: str = "main",
        fork_of: str | None = None,
    ) -> Repo:
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"a repository is 'owner/name', not {full_name!r}")
        with self.lock:
            if full_name.lower() in self.names:
                raise ValueError(f"repository {full_name!r} already exists")
            parent = self.repo(fork_of) if fork_of else None
            repo = Repo(
                id=self._next_id("repo"),
                full_name=full_name,
                created_at=self.now,
                description=description,
                private=private,
                default_branch=default_branch,
                fork=parent is not None,
                parent_id=parent.id if parent else None,
            )
            self.repos[repo.id] = repo
            self.names[full_name.lower()] = repo.id
            self.old_names.pop(full_name.lower(), None)
            self.user_id(owner)
            return repo

    def rename_repo(self, old: str, new: str) -> None:
        with self.lock:
            repo = self.repo(old)
            if new.lower() in self.names and self.names[new.lower()] != repo.id:
                raise ValueError(f"repository {new!r} already exists")
            owner, _, name = new.partition("/")
            if not owner or not name:
                raise ValueError(f"a repository is 'owner/name', not {new!r}")
            del self.names[repo.full_name.lower()]
            self.old_names[repo.full_name.lower()] = repo.id
            repo.full_name = new
            self.names[new.lower()] = repo.id
            self.old_names.pop(new.lower(), None)
            self.user_id(owner)

    def delete_repo(self, full_name: str) -> None:
        """The repository and what it holds are gone: its URLs answer 404 (by name, by
        id, and its old names), and cross-references from its pull requests disappear
        from other timelines, as on GitHub."""
        with self.lock:
            repo = self.repo(full_name)
            del self.repos[repo.id]
            del self.names[repo.full_name.lower()]
            for old in [k for k, v in self.old_names.items() if v == repo.id]:
                del self.old_names[old]

    # -- issues ------------------------------------------------------------------------------
    def issue(self, full_name: str, number: int) -> Issue:
        with self.lock:
            issue = self.repo(full_name).issues.get(number)
            if issue is None:
                raise LookupError(f"no issue or pull request #{number} in {full_name!r}")
            return issue

    def _claim_number(self, repo: Repo, number: int | None) -> int:
        if number is None:
            number = repo.next_number
        if number < 1:
            raise ValueError("issue numbers start at 1")
        if number in repo.issues:
            raise ValueError(f"#{number} already exists in {repo.full_name!r}")
        repo.next_number = max(repo.next_number, number + 1)
        return number

    def add_issue(
        self,
        full_name: str,
        *,
        title: str | None = None,
        body: str | None = None,
        state: str = "open",
        state_reason: str | None = None,
        labels: Iterable[str | dict[str, Any]] = (),
        user: str = DEFAULT_LOGIN,
        number: int | None = None,
    ) -> int:
        _check_state(state, state_reason)
        with self.lock:
            repo = self.repo(full_name)
            number = self._claim_number(repo, number)
            self.user_id(user)
            issue = Issue(
                repo_id=repo.id,
                number=number,
                id=self._next_id("issue"),
                title=title if title is not None else f"Issue {number}",
                body=body,
                user=user,
                labels=self._labels(repo, labels),
                state="open",
                state_reason=None,
                created_at=self.now,
                updated_at=self.now,
            )
            repo.issues[number] = issue
            if state == "closed":
                self._close(issue, state_reason or "completed", actor=user)
            return number

    def update_issue(self, full_name: str, number: int, **fields: Any) -> None:
        unknown = set(fields) - ISSUE_FIELDS
        if unknown:
            raise TypeError(f"update_issue() cannot change {sorted(unknown)}")
        with self.lock:
            issue = self.issue(full_name, number)
            self._tick()
            if issue.pull is None:
                self._apply_issue_fields(issue, fields)
            else:
                self._apply_issue_fields(issue, fields, close_reason=None, reopen_reason=None)
            issue.updated_at = self.now

    def _apply_issue_fields(
        self,
        issue: Issue,
        fields: dict[str, Any],
        *,
        close_reason: str | None = "completed",
        reopen_reason: str | None = "reopened",
    ) -> None:
        repo = self.repos[issue.repo_id]
        state = fields.get("state", issue.state)
        reason = fields.get("state_reason", issue.state_reason if state == issue.state else None)
        _check_state(state, reason)
        if "title" in fields:
            issue.title = fields["title"]
        if "body" in fields:
            issue.body = fields["body"]
        if "labels" in fields:
            issue.labels = self._labels(repo, fields["labels"])
        if state != issue.state:
            if state == "closed":
                self._close(issue, reason or close_reason, actor=self.login)
            else:
                self._reopen(issue, reason or reopen_reason, actor=self.login)
        elif "state_reason" in fields:
            issue.state_reason = reason

    def _close(
        self,
        issue: Issue,
        state_reason: str | None,
        *,
        actor: str,
        commit_id: str | None = None,
        commit_repo: Repo | None = None,
    ) -> None:
        issue.state = "closed"
        issue.state_reason = state_reason
        issue.closed_at = self.now
        issue.closed_by = actor
        issue.updated_at = self.now
        repo = commit_repo or self.repos[issue.repo_id]
        if commit_id is not None:
            self._commit(repo, commit_id, message=f"Close #{issue.number}")
        issue.events.append(
            Event(
                id=self._next_id("event"),
                kind="closed",
                actor=actor,
                created_at=self.now,
                commit_id=commit_id,
                repo_id=repo.id if commit_id else None,
                state_reason=state_reason,
            )
        )

    def _reopen(self, issue: Issue, state_reason: str | None, *, actor: str) -> None:
        issue.state = "open"
        issue.state_reason = state_reason
        issue.closed_at = None
        issue.closed_by = None
        issue.updated_at = self.now
        issue.events.append(
            Event(
                id=self._next_id("event"),
                kind="reopened",
                actor=actor,
                created_at=self.now,
                state_reason=state_reason,
            )
        )

    def close_issue(
        self,
        full_name: str,
        number: int,
        *,
        state_reason: str | None = "completed",
        commit_id: str | None = None,
        commit_repo: str | None = None,
        actor: str | None = None,
    ) -> None:
        _check_state("closed", state_reason)
        with self.lock:
            issue = self.issue(full_name, number)
            other = self.repo(commit_repo) if commit_repo else None
            self._tick()
            self._close(
                issue,
                state_reason,
                actor=actor or self.login,
                commit_id=commit_id,
                commit_repo=other,
            )

    def delete_issue(self, full_name: str, number: int, *, status: int = 410) -> None:
        if status not in (404, 410):
            raise ValueError("a deleted issue answers 404 or 410")
        with self.lock:
            self.issue(full_name, number).deleted = status

    def cross_reference(
        self, *, issue: tuple[str, int], pr: tuple[str, int], actor: str | None = None
    ) -> None:
        with self.lock:
            target = self.issue(*issue)
            source = self.issue(*pr)
            target.events.append(
                Event(
                    id=self._next_id("event"),
                    kind="cross-referenced",
                    actor=actor or source.user,
                    created_at=self.now,
                    source=(source.repo_id, source.number),
                )
            )

    # -- pull requests -------------------------------------------------------------------------
    def _head_repo_id(self, base: Repo, head_repo: str | SameRepo | None) -> int | None:
        if head_repo is None:
            return None
        if isinstance(head_repo, SameRepo):
            return base.id
        found, _ = self.find_repo(head_repo)
        if found is None:
            found = self.add_repo(head_repo, fork_of=base.full_name)
        return found.id

    def _files(self, repo: Repo, head_sha: str, files: Iterable[str | dict[str, Any]]):
        result = []
        for spec in files:
            entry = {"filename": spec} if isinstance(spec, str) else dict(spec)
            name = entry["filename"]
            entry.setdefault("status", "modified")
            entry.setdefault("additions", 0 if entry["status"] == "removed" else 1)
            entry.setdefault("deletions", 0 if entry["status"] in ("added", "renamed") else 1)
            entry.setdefault("changes", entry["additions"] + entry["deletions"])
            entry.setdefault("patch", f"@@ -1 +1 @@\n-old {name}\n+new {name}")
            entry.setdefault("sha", fake_sha(repo.id, head_sha, name))
            result.append(entry)
        return result

    def _commits(
        self, repo: Repo, number: int, specs: Iterable[str | dict[str, Any]], author: str
    ) -> list[Commit]:
        result = []
        for i, spec in enumerate(specs):
            entry = {"message": spec} if isinstance(spec, str) else dict(spec)
            sha = entry.get("sha") or fake_sha(
                repo.full_name, number, "commit", i, entry["message"]
            )
            commit = self._commit(
                repo, sha, message=entry["message"], author=entry.get("author", author)
            )
            if number not in commit.pulls:
                commit.pulls.append(number)
            result.append(commit)
        return result

    def _commit(
        self, repo: Repo, sha: str, *, message: str = "Commit", author: str | None = None
    ) -> Commit:
        commit = repo.commits.get(sha)
        if commit is None:
            commit = Commit(sha, message, author or self.login, self.now)
            repo.commits[sha] = commit
        return commit

    def add_pull(
        self,
        full_name: str,
        *,
        title: str | None = None,
        body: str | None = None,
        state: str = "open",
        merged: bool = False,
        head_repo: str | SameRepo | None = SAME_REPO,
        files: Iterable[str | dict[str, Any]] = (),
        commits: Iterable[str | dict[str, Any]] = (),
        merge_commit_sha: str | None = None,
        number: int | None = None,
        user: str = DEFAULT_LOGIN,
        labels: Iterable[str | dict[str, Any]] = (),
        head_ref: str | None = None,
        draft: bool = False,
    ) -> int:
        if state not in ("open", "closed"):
            raise ValueError(f"state is 'open' or 'closed', not {state!r}")
        with self.lock:
            repo = self.repo(full_name)
            number = self._claim_number(repo, number)
            self.user_id(user)
            head_repo_id = self._head_repo_id(repo, head_repo)
            head_sha = fake_sha(repo.full_name, number, "head")
            pull = Pull(
                id=self._next_id("pull"),
                head_repo_id=head_repo_id,
                head_ref=head_ref or f"pr-{number}",
                head_sha=head_sha,
                base_ref=repo.default_branch,
                base_sha=fake_sha(repo.full_name, repo.default_branch),
                merge_commit_sha=merge_commit_sha or fake_sha(repo.full_name, number, "merge"),
                files=self._files(repo, head_sha, files),
                draft=draft,
            )
            issue = Issue(
                repo_id=repo.id,
                number=number,
                id=self._next_id("issue"),
                title=title if title is not None else f"Pull request {number}",
                body=body,
                user=user,
                labels=self._labels(repo, labels),
                state="open",
                state_reason=None,
                created_at=self.now,
                updated_at=self.now,
                pull=pull,
            )
            repo.issues[number] = issue
            pull.commits = self._commits(repo, number, commits, user)
            if merged:
                self._merge(issue, actor=user)
            elif state == "closed":
                self._close(issue, None, actor=user)
            return number

    def _mark_merged(self, issue: Issue, *, actor: str) -> None:
        pull = issue.pull
        assert pull is not None
        repo = self.repos[issue.repo_id]
        pull.merged, pull.merged_at, pull.merged_by = True, self.now, actor
        sha = pull.merge_commit_sha or fake_sha(repo.full_name, issue.number, "merge")
        pull.merge_commit_sha = sha
        commit = self._commit(repo, sha, message=f"Merge pull request #{issue.number}")
        if issue.number not in commit.pulls:
            commit.pulls.append(issue.number)
        issue.events.append(
            Event(
                id=self._next_id("event"),
                kind="merged",
                actor=actor,
                created_at=self.now,
                commit_id=sha,
                repo_id=repo.id,
            )
        )

    def _merge(self, issue: Issue, *, actor: str) -> None:
        self._mark_merged(issue, actor=actor)
        self._close(issue, None, actor=actor)

    def pull(self, full_name: str, number: int) -> Issue:
        with self.lock:
            issue = self.issue(full_name, number)
            if issue.pull is None:
                raise LookupError(f"#{number} in {full_name!r} is an issue, not a pull request")
            return issue

    def update_pull(self, full_name: str, number: int, **fields: Any) -> None:
        unknown = set(fields) - PULL_FIELDS
        if unknown:
            raise TypeError(f"update_pull() cannot change {sorted(unknown)}")
        with self.lock:
            issue = self.pull(full_name, number)
            pull = issue.pull
            assert pull is not None
            repo = self.repos[issue.repo_id]
            self._tick()
            if "merge_commit_sha" in fields:
                pull.merge_commit_sha = fields["merge_commit_sha"]
            if "files" in fields:
                pull.files = self._files(repo, pull.head_sha, fields["files"])
            if "commits" in fields:
                pull.commits = self._commits(repo, number, fields["commits"], issue.user)
            if "draft" in fields:
                pull.draft = bool(fields["draft"])
            if "head_repo" in fields:
                pull.head_repo_id = self._head_repo_id(repo, fields["head_repo"])
            if "head_ref" in fields:
                pull.head_ref = fields["head_ref"]
            merging = bool(fields.get("merged")) and not pull.merged
            if fields.get("merged") is False and pull.merged:
                pull.merged, pull.merged_at, pull.merged_by = False, None, None
            issue_fields = {k: v for k, v in fields.items() if k in ISSUE_FIELDS}
            if merging:
                issue_fields.pop("state", None)
            self._apply_issue_fields(issue, issue_fields, close_reason=None, reopen_reason=None)
            if merging and issue.state == "open":
                self._merge(issue, actor=self.login)
            elif merging:
                self._mark_merged(issue, actor=self.login)
            issue.updated_at = self.now

    # -- commits -------------------------------------------------------------------------------
    def add_commit(
        self,
        full_name: str,
        sha: str,
        *,
        pulls: Sequence[int] = (),
        message: str | None = None,
        author: str | None = None,
    ) -> str:
        with self.lock:
            repo = self.repo(full_name)
            commit = self._commit(repo, sha, message=message or "Commit", author=author)
            if message is not None:
                commit.message = message
            for number in pulls:
                self.pull(repo.full_name, number)
                if number not in commit.pulls:
                    commit.pulls.append(number)
            return sha

    def find_commit(self, repo: Repo, ref: str) -> Commit | None:
        """By full sha, or by an unambiguous prefix of at least 4 characters, as GitHub."""
        if ref in repo.commits:
            return repo.commits[ref]
        if len(ref) >= 4:
            matches = [c for sha, c in repo.commits.items() if sha.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
        return None

    # -- faults --------------------------------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.pattern.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
            return None

    # -- rate limit ----------------------------------------------------------------------------
    def rate_window(self) -> tuple[int, int, int]:
        """(remaining, used, reset epoch) of the core rate limit, rolling the window over
        when its reset time has passed."""
        with self.lock:
            now = time.time()
            if now >= self.rate_reset:
                self.rate_used = 0
                self.rate_reset = int(now) + RATE_WINDOW_SECONDS
            remaining = max(0, self.rate_limit_total - self.rate_used)
            return remaining, self.rate_used, self.rate_reset

    def count_request(self) -> None:
        with self.lock:
            self.rate_window()
            self.rate_used += 1

    def set_rate_remaining(self, remaining: int) -> None:
        with self.lock:
            self.rate_window()
            self.rate_used = max(0, self.rate_limit_total - remaining)

    def record(self, record: RequestRecord) -> None:
        with self.lock:
            self.requests.append(record)

    def request_count(self, path_pattern: str | None = None) -> int:
        with self.lock:
            if path_pattern is None:
                return len(self.requests)
            pattern = re.compile(path_pattern)
            return sum(1 for r in self.requests if pattern.search(r.path))

    # -- listings --------------------------------------------------------------------------------
    def list_issues(
        self,
        repo: Repo,
        *,
        state: str,
        since: datetime | None,
        sort: str,
        direction: str,
        labels: Sequence[str] = (),
    ) -> list[Issue]:
        with self.lock:
            wanted = {name.lower() for name in labels}
            issues = [
                issue
                for issue in repo.issues.values()
                if issue.deleted is None
                and (state == "all" or issue.state == state)
                and (since is None or issue.updated_at >= since)
                and wanted <= {name.lower() for name in issue.labels}
            ]
            if sort == "updated":
                issues.sort(key=lambda i: (i.updated_at, i.number))
            elif sort == "comments":
                issues.sort(key=lambda i: i.number)  # no comments here: all have 0
            else:
                issues.sort(key=lambda i: (i.created_at, i.number))
            if direction == "desc":
                issues.reverse()
            return issues


def _check_state(state: str, state_reason: str | None) -> None:
    if state not in ("open", "closed"):
        raise ValueError(f"state is 'open' or 'closed', not {state!r}")
    if state_reason is not None and state_reason not in STATE_REASONS:
        raise ValueError(f"state_reason is one of {sorted(STATE_REASONS)}, not {state_reason!r}")


# -- JSON ----------------------------------------------------------------------------------
class View:
    """Renders the state as GitHub's JSON for one request: ``api`` is the API base the
    request used (``http://127.0.0.1:PORT`` or ``.../api/v3``), ``web`` the host root."""

    def __init__(self, state: State, api: str, web: str) -> None:
        self.state = state
        self.api = api
        self.web = web
        self.host = web.split("://", 1)[-1]

    # -- users and labels --------------------------------------------------------------------
    def user(self, login: str | None, *, detail: bool = False) -> dict[str, Any] | None:
        if login is None:
            return None
        uid = self.state.user_id(login)
        api = f"{self.api}/users/{login}"
        data: dict[str, Any] = {
            "login": login,
            "id": uid,
            "node_id": node_id("User", uid),
            "avatar_url": f"{self.web}/avatars/u/{uid}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.web}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "User",
            "user_view_type": "public",
            "site_admin": False,
        }
        if detail:
            data.update(
                name=login.capitalize(),
                company=None,
                blog="",
                location=None,
                email=None,
                hireable=None,
                bio=None,
                twitter_username=None,
                public_repos=sum(1 for r in self.state.repos.values() if r.owner == login),
                public_gists=0,
                followers=0,
                following=0,
                created_at=iso(START - timedelta(days=365)),
                updated_at=iso(START),
            )
        return data

    def label(self, repo: Repo, name: str) -> dict[str, Any]:
        label = repo.labels[name.lower()]
        return {
            "id": label.id,
            "node_id": node_id("Label", label.id),
            "url": f"{self.api}/repos/{repo.full_name}/labels/{quote(label.name)}",
            "name": label.name,
            "color": label.color,
            "default": label.name.lower() in _KNOWN_LABEL_COLORS,
            "description": label.description,
        }

    # -- repositories ------------------------------------------------------------------------
    def repo(self, repo: Repo, *, detail: bool = False) -> dict[str, Any]:
        full = repo.full_name
        api = f"{self.api}/repos/{full}"
        open_count = sum(1 for i in repo.issues.values() if i.state == "open" and i.deleted is None)
        data: dict[str, Any] = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": full,
            "private": repo.private,
            "owner": self.user(repo.owner),
            "html_url": f"{self.web}/{full}",
            "description": repo.description,
            "fork": repo.fork,
            "url": api,
            "forks_url": f"{api}/forks",
            "keys_url": f"{api}/keys{{/key_id}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "teams_url": f"{api}/teams",
            "hooks_url": f"{api}/hooks",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "events_url": f"{api}/events",
            "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "tags_url": f"{api}/tags",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "languages_url": f"{api}/languages",
            "stargazers_url": f"{api}/stargazers",
            "contributors_url": f"{api}/contributors",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "commits_url": f"{api}/commits{{/sha}}",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "comments_url": f"{api}/comments{{/number}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "merges_url": f"{api}/merges",
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{api}/downloads",
            "issues_url": f"{api}/issues{{/number}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "labels_url": f"{api}/labels{{/name}}",
            "releases_url": f"{api}/releases{{/id}}",
            "deployments_url": f"{api}/deployments",
            "created_at": iso(repo.created_at),
            "updated_at": iso(repo.created_at),
            "pushed_at": iso(repo.created_at),
            "git_url": f"git://{self.host}/{full}.git",
            "ssh_url": f"git@{self.host.split(':')[0]}:{full}.git",
            "clone_url": f"{self.web}/{full}.git",
            "svn_url": f"{self.web}/{full}",
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": "Python",
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_count,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private" if repo.private else "public",
            "forks": 0,
            "open_issues": open_count,
            "watchers": 0,
            "default_branch": repo.default_branch,
        }
        if detail:
            data["permissions"] = {
                "admin": False,
                "maintain": False,
                "push": False,
                "triage": True,
                "pull": True,
            }
            parent = self.state.repos.get(repo.parent_id) if repo.parent_id else None
            if parent is not None:
                data["parent"] = self.repo(parent)
                data["source"] = self.repo(parent)
            data["network_count"] = 0
            data["subscribers_count"] = 0
        return data

    # -- issues ------------------------------------------------------------------------------
    def issue(
        self, issue: Issue, *, detail: bool = False, with_repository: bool = False
    ) -> dict[str, Any]:
        repo = self.state.repos[issue.repo_id]
        full = repo.full_name
        api = f"{self.api}/repos/{full}/issues/{issue.number}"
        kind = "pull" if issue.pull else "issues"
        data: dict[str, Any] = {
            "url": api,
            "repository_url": f"{self.api}/repos/{full}",
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": f"{self.web}/{full}/{kind}/{issue.number}",
            "id": issue.id,
            "node_id": node_id("PullRequest" if issue.pull else "Issue", issue.id),
            "number": issue.number,
            "title": issue.title,
            "user": self.user(issue.user),
            "labels": [self.label(repo, name) for name in issue.labels],
            "state": issue.state,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": 0,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "author_association": "OWNER" if issue.user == repo.owner else "CONTRIBUTOR",
            "type": None,
            "active_lock_reason": None,
        }
        if issue.pull is None:
            data["sub_issues_summary"] = {"total": 0, "completed": 0, "percent_completed": 0}
            data["issue_dependencies_summary"] = {
                "blocked_by": 0,
                "total_blocked_by": 0,
                "blocking": 0,
                "total_blocking": 0,
            }
        else:
            pulls = f"{self.web}/{full}/pull/{issue.number}"
            data["draft"] = issue.pull.draft
            data["pull_request"] = {
                "url": f"{self.api}/repos/{full}/pulls/{issue.number}",
                "html_url": pulls,
                "diff_url": f"{pulls}.diff",
                "patch_url": f"{pulls}.patch",
                "merged_at": iso(issue.pull.merged_at),
            }
        data["body"] = issue.body
        if detail:
            data["closed_by"] = self.user(issue.closed_by)
        data["reactions"] = {
            "url": f"{api}/reactions",
            "total_count": 0,
            "+1": 0,
            "-1": 0,
            "laugh": 0,
            "hooray": 0,
            "confused": 0,
            "heart": 0,
            "rocket": 0,
            "eyes": 0,
        }
        data["timeline_url"] = f"{api}/timeline"
        data["performed_via_github_app"] = None
        data["state_reason"] = issue.state_reason
        if with_repository:
            data["repository"] = self.repo(repo)
        return data

    def event(self, issue: Issue, event: Event) -> dict[str, Any]:
        """An issue event (``closed``, ``reopened``, ``merged``)."""
        repo = self.state.repos[issue.repo_id]
        commit_repo = self.state.repos.get(event.repo_id) if event.repo_id else None
        commit_url = None
        if event.commit_id and commit_repo is not None:
            commit_url = f"{self.api}/repos/{commit_repo.full_name}/commits/{event.commit_id}"
        kind = "".join(part.capitalize() for part in event.kind.split("-")) + "Event"
        data: dict[str, Any] = {
            "id": event.id,
            "node_id": node_id(kind, event.id),
            "url": f"{self.api}/repos/{repo.full_name}/issues/events/{event.id}",
            "actor": self.user(event.actor),
            "event": event.kind,
            "commit_id": event.commit_id,
            "commit_url": commit_url,
            "created_at": iso(event.created_at),
        }
        if event.kind in ("closed", "reopened"):
            data["state_reason"] = event.state_reason
        data["performed_via_github_app"] = None
        return data

    def timeline_item(self, issue: Issue, event: Event) -> dict[str, Any] | None:
        if event.kind != "cross-referenced":
            return self.event(issue, event)
        assert event.source is not None
        source_repo = self.state.repos.get(event.source[0])
        source = source_repo.issues.get(event.source[1]) if source_repo else None
        if source is None or source.deleted is not None:
            return None
        return {
            "actor": self.user(event.actor),
            "created_at": iso(event.created_at),
            "updated_at": iso(event.created_at),
            "source": {"type": "issue", "issue": self.issue(source, with_repository=True)},
            "event": "cross-referenced",
        }

    def timeline(self, issue: Issue) -> list[dict[str, Any]]:
        items = (self.timeline_item(issue, event) for event in issue.events)
        return [item for item in items if item is not None]

    def events(self, issue: Issue) -> list[dict[str, Any]]:
        return [self.event(issue, e) for e in issue.events if e.kind != "cross-referenced"]

    # -- pull requests -------------------------------------------------------------------------
    def _branch(
        self, repo: Repo | None, ref: str, sha: str, *, deleted: bool = False
    ) -> dict[str, Any]:
        if repo is None or deleted:
            return {"label": None, "ref": ref, "sha": sha, "user": None, "repo": None}
        return {
            "label": f"{repo.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.user(repo.owner),
            "repo": self.repo(repo),
        }

    def pull(self, issue: Issue, *, detail: bool = True) -> dict[str, Any]:
        pull = issue.pull
        assert pull is not None
        repo = self.state.repos[issue.repo_id]
        full = repo.full_name
        api = f"{self.api}/repos/{full}/pulls/{issue.number}"
        html = f"{self.web}/{full}/pull/{issue.number}"
        issue_api = f"{self.api}/repos/{full}/issues/{issue.number}"
        statuses = f"{self.api}/repos/{full}/statuses/{pull.head_sha}"
        head_repo = self.state.repos.get(pull.head_repo_id) if pull.head_repo_id else None
        data: dict[str, Any] = {
            "url": api,
            "id": pull.id,
            "node_id": node_id("PullRequest", pull.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue_api,
            "number": issue.number,
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "user": self.user(issue.user),
            "body": issue.body,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "labels": [self.label(repo, name) for name in issue.labels],
            "milestone": None,
            "draft": pull.draft,
            "commits_url": f"{api}/commits",
            "review_comments_url": f"{api}/comments",
            "review_comment_url": f"{self.api}/repos/{full}/pulls/comments{{/number}}",
            "comments_url": f"{issue_api}/comments",
            "statuses_url": statuses,
            "head": self._branch(
                head_repo, pull.head_ref, pull.head_sha, deleted=pull.head_repo_id is None
            ),
            "base": self._branch(repo, pull.base_ref, pull.base_sha),
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "issue": {"href": issue_api},
                "comments": {"href": f"{issue_api}/comments"},
                "review_comments": {"href": f"{api}/comments"},
                "review_comment": {"href": f"{self.api}/repos/{full}/pulls/comments{{/number}}"},
                "commits": {"href": f"{api}/commits"},
                "statuses": {"href": statuses},
            },
            "author_association": "OWNER" if issue.user == repo.owner else "CONTRIBUTOR",
            "auto_merge": None,
            "active_lock_reason": None,
        }
        if detail:
            is_open = issue.state == "open"
            data.update(
                merged=pull.merged,
                mergeable=True if is_open else None,
                rebaseable=True if is_open else None,
                mergeable_state="clean" if is_open else "unknown",
                merged_by=self.user(pull.merged_by),
                comments=0,
                review_comments=0,
                maintainer_can_modify=False,
                commits=len(pull.commits),
                additions=sum(int(f.get("additions", 0)) for f in pull.files),
                deletions=sum(int(f.get("deletions", 0)) for f in pull.files),
                changed_files=len(pull.files),
            )
        return data

    def file(self, issue: Issue, entry: dict[str, Any]) -> dict[str, Any]:
        pull = issue.pull
        assert pull is not None
        full = self.state.repos[issue.repo_id].full_name
        name = quote(entry["filename"])
        data: dict[str, Any] = {
            "sha": entry["sha"],
            "filename": entry["filename"],
            "status": entry["status"],
            "additions": entry["additions"],
            "deletions": entry["deletions"],
            "changes": entry["changes"],
            "blob_url": f"{self.web}/{full}/blob/{pull.head_sha}/{name}",
            "raw_url": f"{self.web}/{full}/raw/{pull.head_sha}/{name}",
            "contents_url": f"{self.api}/repos/{full}/contents/{name}?ref={pull.head_sha}",
        }
        if entry.get("patch") is not None:
            data["patch"] = entry["patch"]
        if entry.get("previous_filename"):
            data["previous_filename"] = entry["previous_filename"]
        return data

    def commit(self, repo: Repo, commit: Commit, *, detail: bool = False) -> dict[str, Any]:
        full = repo.full_name
        api = f"{self.api}/repos/{full}"
        person = {
            "name": commit.author.capitalize(),
            "email": f"{commit.author}@users.noreply.github.com",
            "date": iso(commit.date),
        }
        parent = fake_sha(full, commit.sha, "parent")
        tree = fake_sha(full, commit.sha, "tree")
        data: dict[str, Any] = {
            "sha": commit.sha,
            "node_id": node_id("Commit", int(fake_sha(commit.sha)[:8], 16)),
            "commit": {
                "author": person,
                "committer": person,
                "message": commit.message,
                "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
                "url": f"{api}/git/commits/{commit.sha}",
                "comment_count": 0,
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            "url": f"{api}/commits/{commit.sha}",
            "html_url": f"{self.web}/{full}/commit/{commit.sha}",
            "comments_url": f"{api}/commits/{commit.sha}/comments",
            "author": self.user(commit.author),
            "committer": self.user(commit.author),
            "parents": [
                {
                    "sha": parent,
                    "url": f"{api}/commits/{parent}",
                    "html_url": f"{self.web}/{full}/commit/{parent}",
                }
            ],
        }
        if detail:
            data["stats"] = {"total": 0, "additions": 0, "deletions": 0}
            data["files"] = []
        return data

    # -- rate limit ----------------------------------------------------------------------------
    def rate_limit(self) -> dict[str, Any]:
        remaining, used, reset = self.state.rate_window()
        limit = self.state.rate_limit_total
        core = {"limit": limit, "used": used, "remaining": remaining, "reset": reset}

        def fresh(size: int) -> dict[str, int]:
            return {"limit": size, "used": 0, "remaining": size, "reset": reset}

        return {
            "resources": {
                "core": core,
                "search": fresh(30),
                "graphql": fresh(5000),
                "integration_manifest": fresh(5000),
                "source_import": fresh(100),
                "code_scanning_upload": fresh(1000),
                "actions_runner_registration": fresh(10000),
                "scim": fresh(15000),
                "dependency_snapshots": fresh(100),
                "code_search": fresh(10),
            },
            "rate": core,
        }


def page_count(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def status_message(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
