"""The only code that talks to GitHub: PyGithub, set up for a cron job.

- `Auth.Token`, `per_page=100`, a timeout, and `BoundedRetry`: transient
  errors (5xx, dropped connections) are retried a few times with backoff, and
  no rate-limit wait is ever longer than `max_rate_limit_wait`; a longer one
  raises, and the worker stops cleanly and says when to run again.
- The repository listing is a conditional request (`If-None-Match` with the
  stored ETag) through PyGithub's requester: an unchanged repository costs one
  request that GitHub does not count against the rate limit.
- Every request is counted where it is sent, at urllib3 (`Transport`, fed by
  `BoundedRetry`): the retries urllib3 makes and the redirects PyGithub follows
  are requests too, and the rate limit left is the last response's, even one
  PyGithub never saw (the rate-limit answer that stopped the run).

Errors are classified once, here (`classify`), into what the worker does
about them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from django.conf import settings
from github import Auth, Github, GithubException, GithubRetry
from github.GithubException import (
    BadCredentialsException,
    RateLimitExceededExceedsMaxWait,
    RateLimitExceededException,
    UnknownObjectException,
)
from urllib3.exceptions import ConnectTimeoutError

from .config import GitHubSettings

logger = logging.getLogger("agira.github")

PER_PAGE = 100


class Transport:
    """What went over the wire for one client: the requests sent, and the rate limit
    of a response that PyGithub never read (it raised inside urllib3)."""

    def __init__(self) -> None:
        self.requests = 0
        self.unread_rate: tuple[int, datetime | None] | None = None

    def note_rate(self, headers) -> None:
        remaining = _header(headers, "x-ratelimit-remaining")
        reset = _header(headers, "x-ratelimit-reset")
        if remaining.strip().lstrip("-").isdigit():
            when = datetime.fromtimestamp(int(reset), UTC) if reset.isdigit() else None
            self.unread_rate = (int(remaining), when)


class BoundedRetry(GithubRetry):
    """`GithubRetry` that never sleeps longer than `max_rate_limit_wait`, and counts.

    `GithubRetry` caps the wait it computes for a 403 rate limit, but a
    `Retry-After` header (403 or 429) is slept by urllib3 itself, uncapped,
    and a 429 is not treated as a rate limit at all. Here both are checked
    first: a wait above the cap raises `RateLimitExceededExceedsMaxWait`.

    The retry object is the one per-client hook PyGithub 2.10 gives into its
    transport (`Github(retry=...)` reaches the `HTTPAdapter` of every connection,
    and urllib3 copies it through `new()` from one attempt to the next), so the
    counting lives here: urllib3 asks `is_retry` about every response it receives,
    and calls `increment` for every attempt that got none.
    """

    def __init__(self, *, transport: Transport | None = None, **kwargs: Any) -> None:
        self.transport = transport or Transport()
        kwargs.setdefault("status_forcelist", [*range(500, 600), 429])
        kwargs.setdefault(
            "raise_on_status", False
        )  # the last 5xx reaches PyGithub as a GithubException
        super().__init__(**kwargs)

    def new(self, **kw: Any):
        kw["transport"] = self.transport
        return super().new(**kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        self.transport.requests += 1
        retry = super().is_retry(method, status_code, has_retry_after)
        if not retry:
            # PyGithub reads this response's rate limit itself.
            self.transport.unread_rate = None
        return retry

    def increment(
        self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None
    ):
        if response is not None:
            self.transport.note_rate(response.headers)
        elif error is not None and not isinstance(error, ConnectTimeoutError):
            # Sent, but no answer came back (a read timeout, a dropped connection);
            # a connection that never opened sent nothing.
            self.transport.requests += 1
        if (
            response is not None
            and response.status in (403, 429, 503)
            and self.max_rate_limit_wait is not None
        ):
            wait = rate_limit_wait(response.headers)
            if wait is not None and wait > self.max_rate_limit_wait:
                try:
                    data = json.loads(self.get_content(response, url) or b"{}")
                except ValueError:
                    data = {"message": "rate limit"}
                raise RateLimitExceededExceedsMaxWait(
                    response.status, data, dict(response.headers), wait=wait
                )
        return super().increment(method, url, response, error, _pool, _stacktrace)


def rate_limit_wait(headers) -> float | None:
    """Seconds a rate-limited response asks us to wait, or None if it does not say."""
    retry_after = headers.get("Retry-After") or headers.get("retry-after")
    if retry_after and str(retry_after).strip().isdigit():
        return float(retry_after)
    remaining = headers.get("X-RateLimit-Remaining") or headers.get("x-ratelimit-remaining")
    reset = headers.get("X-RateLimit-Reset") or headers.get("x-ratelimit-reset")
    if remaining is not None and str(remaining).strip() == "0" and reset and str(reset).isdigit():
        return max(0.0, int(reset) - time.time()) + 1
    return None


# -- what went wrong, and what to do about it ------------------------------------------
PERMANENT, TRANSIENT, RATE_LIMITED, UNAUTHORIZED, MISCONFIGURED = (
    "permanent",
    "transient",
    "rate_limited",
    "unauthorized",
    "misconfigured",  # PyGithub itself refused (another host in GitHub's URLs, say)
)


@dataclass(frozen=True)
class Failure:
    kind: str  # one of the five above
    message: str  # for people: never contains the token
    status: int | None = None
    retry_at: datetime | None = None  # rate limits: when GitHub lets us in again


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, RateLimitExceededException) or _is_rate_limit(exc):
        return Failure(
            RATE_LIMITED, _message(exc, "rate limit exceeded"), _status(exc), _retry_at(exc)
        )
    if isinstance(exc, BadCredentialsException) or _status(exc) == 401:
        return Failure(UNAUTHORIZED, "GitHub refused the token (401 Bad credentials)", 401)
    if isinstance(exc, UnknownObjectException) or _status(exc) == 404:
        return Failure(
            PERMANENT, "not found on GitHub (404): deleted, or the token cannot see it", 404
        )
    status = _status(exc)
    if status == 410:
        return Failure(PERMANENT, f"deleted on GitHub (410): {_message(exc, 'gone')}", 410)
    if status == 403:
        return Failure(PERMANENT, f"not accessible (403): {_message(exc, 'forbidden')}", 403)
    if status is not None and 400 <= status < 500:
        return Failure(
            PERMANENT, f"GitHub answered {status}: {_message(exc, 'client error')}", status
        )
    if isinstance(exc, GithubException):
        return Failure(
            TRANSIENT, f"GitHub answered {status}: {_message(exc, 'server error')}", status
        )
    if isinstance(exc, requests.RequestException | OSError):
        return Failure(TRANSIENT, f"cannot reach GitHub: {type(exc).__name__}: {_scrub(str(exc))}")
    if _raised_by_pygithub(exc):
        return Failure(
            MISCONFIGURED,
            f"PyGithub cannot use GitHub's answer ({type(exc).__name__}: "
            f"{_scrub(str(exc))[:300]}); check the base URL",
        )
    raise exc  # ours: a bug


def _raised_by_pygithub(exc: BaseException) -> bool:
    """Whether `exc` comes from inside PyGithub (its innermost frame is PyGithub's)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "")
    return module == "github" or module.startswith("github.")


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status", None) if isinstance(exc, GithubException) else None


def _is_rate_limit(exc: BaseException) -> bool:
    if not isinstance(exc, GithubException) or exc.status not in (403, 429):
        return False
    headers = exc.headers or {}
    return exc.status == 429 or rate_limit_wait(headers) is not None


def _retry_at(exc: BaseException) -> datetime | None:
    headers = getattr(exc, "headers", None) or {}
    wait = rate_limit_wait(headers)
    if wait is None and isinstance(exc, RateLimitExceededExceedsMaxWait) and exc.wait:
        wait = exc.wait
    return datetime.fromtimestamp(time.time() + wait, UTC) if wait is not None else None


def _message(exc: BaseException, default: str) -> str:
    data = getattr(exc, "data", None)
    message = data.get("message") if isinstance(data, dict) else None
    return _scrub(str(message or getattr(exc, "message", None) or default))[:300]


def _scrub(text: str) -> str:
    """Drop anything that looks like a credential from a message."""
    words = text.split()
    return " ".join(
        "[hidden]" if w.lower().startswith(("ghp_", "gho_", "ghs_", "github_pat_", "token=")) else w
        for w in words
    )


# -- the API ----------------------------------------------------------------------
@dataclass
class Listing:
    """One repository's incremental listing."""

    not_modified: bool
    etag: str = ""
    issues: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class PullRef:
    """A pull request by repository (lower case: GitHub's names are case-insensitive,
    and links store them lower case) and number."""

    repository: str
    number: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "repository", self.repository.lower())


class GitHubAPI:
    def __init__(self, config: GitHubSettings) -> None:
        self.config = config
        self.transport = Transport()
        retry = BoundedRetry(
            transport=self.transport,
            total=settings.AGIRA_GITHUB_RETRIES,
            backoff_factor=settings.AGIRA_GITHUB_RETRY_BACKOFF,
            max_rate_limit_wait=config.max_rate_limit_wait,
            secondary_rate_wait=min(60, config.max_rate_limit_wait),
        )
        self.gh = Github(
            auth=Auth.Token(config.token),
            base_url=config.base_url,
            timeout=max(1, math.ceil(config.timeout)),
            per_page=PER_PAGE,
            retry=retry,
            user_agent="Agira",
            seconds_between_requests=settings.AGIRA_GITHUB_SECONDS_BETWEEN_REQUESTS,
            lazy=True,  # a repository or issue object costs no request until it is read
        )

    def close(self) -> None:
        self.gh.close()

    def scrub(self, text: str) -> str:
        """`text` without the token, whatever quoted or wrapped it."""
        token = self.config.token
        return text.replace(token, "[token]") if token and len(token) >= 4 else text

    @property
    def requests(self) -> int:
        """Requests sent so far, retries and followed redirects included."""
        return self.transport.requests

    @property
    def rate_limit(self) -> tuple[int | None, datetime | None]:
        """Remaining requests and the reset time, as of the last response (no request)."""
        if self.transport.unread_rate is not None:
            return self.transport.unread_rate
        remaining, _limit = self.gh.requester.rate_limiting
        reset = self.gh.requester.rate_limiting_resettime
        return (
            remaining if remaining >= 0 else None,
            datetime.fromtimestamp(reset, UTC) if reset else None,
        )

    # One repository's issues updated since a moment, newest first.
    def repository(self, full_name: str) -> dict:
        """The repository's JSON (its numeric id, and its current name if it moved)."""
        _headers, data = self.gh.requester.requestJsonAndCheck("GET", f"/repos/{full_name}")
        return data or {}

    def list_updated(self, repository_id: int, *, since: datetime | None, etag: str) -> Listing:
        """Issues and PRs updated at or after `since`, newest first (all pages, or the
        first only when there is no `since`); `not_modified` if the ETag still matches."""
        parameters = {"state": "all", "sort": "updated", "direction": "desc", "per_page": PER_PAGE}
        if since is not None:
            parameters["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {"If-None-Match": etag} if etag else {}
        # By id: a renamed or transferred repository answers here without a redirect
        # (PyGithub follows a 301 without the query string).
        url = f"/repositories/{repository_id}/issues"
        status, response_headers, body = self.gh.requester.requestJson(
            "GET", url, parameters=parameters, headers=headers
        )
        if status == 304:
            return Listing(not_modified=True, etag=etag)
        listing = Listing(not_modified=False, etag=_header(response_headers, "etag"))
        while True:
            if status >= 400:
                raise self.gh.requester.createException(status, response_headers, _json(body))
            listing.issues.extend(_json(body) or [])
            next_url = _next_link(_header(response_headers, "link"))
            if not next_url or since is None:
                return listing
            status, response_headers, body = self.gh.requester.requestJson("GET", next_url)

    def issue(self, repository: str, number: int):
        return self.gh.get_repo(repository).get_issue(number)

    def timeline(self, issue) -> list:
        return self._collect(issue.get_timeline())

    def pull(self, repository: str, number: int):
        return self.gh.get_repo(repository).get_pull(number)

    def pull_files(self, pull, limit: int) -> tuple[list[str], bool]:
        files = self._collect(pull.get_files(), limit=limit + 1)
        return [f.filename for f in files[:limit]], len(files) > limit

    def pull_commit_messages(self, pull, limit: int) -> tuple[list[str], bool]:
        commits = self._collect(pull.get_commits(), limit=limit + 1)
        return [c.commit.message for c in commits[:limit]], len(commits) > limit

    def commit_pulls(self, repository: str, sha: str) -> list[PullRef]:
        """The pull requests a commit belongs to (the one that closed an issue)."""
        out = []
        url = f"/repos/{repository}/commits/{sha}/pulls"
        while url:
            response_headers, data = self.gh.requester.requestJsonAndCheck(
                "GET", url, {"per_page": PER_PAGE}
            )
            for pull in data or []:
                base = ((pull.get("base") or {}).get("repo") or {}).get("full_name") or repository
                out.append(PullRef(base, int(pull["number"])))
            next_url = _next_link(_header(response_headers, "link"))
            url = next_url
        return out

    def _collect(self, paginated: Iterable, limit: int | None = None) -> list:
        items = []
        for obj in paginated:
            items.append(obj)
            if limit is not None and len(items) >= limit:
                break
        return items


def _header(headers: dict, name: str) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return ""


def _json(body: str) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return {"message": body[:200]}


def _next_link(link_header: str) -> str:
    for part in (link_header or "").split(","):
        section = part.split(";")
        if len(section) >= 2 and 'rel="next"' in section[1]:
            return section[0].strip().strip("<>")
    return ""


def check_connection(config: GitHubSettings) -> tuple[bool, str]:
    """For the admin's "Test connection": who the token is and what is left of the
    rate limit (`GET /rate_limit` does not count against it). Never shows the token."""
    if not config.token:
        return False, "No token is configured."
    api = GitHubAPI(config)
    try:
        _headers, data = api.gh.requester.requestJsonAndCheck("GET", "/rate_limit")
        core = ((data or {}).get("resources") or {}).get("core") or {}
        remaining, limit = core.get("remaining", "?"), core.get("limit", "?")
        return (
            True,
            f"Connected to {config.base_url}: {remaining} of {limit} requests left this hour.",
        )
    except Exception as exc:
        try:
            failure = classify(exc)
        except Exception:
            return False, f"Cannot use {config.base_url}: {type(exc).__name__}"
        return False, f"Cannot use {config.base_url}: {failure.message}"
    finally:
        api.close()
