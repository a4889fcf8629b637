"""``GitHubTestServer``: a local HTTP server that answers like GitHub's REST API v3.

The real PyGithub talks to it over HTTP (``Github(base_url=server.base_url)``). The same
API is served under ``/api/v3`` too (GitHub Enterprise's shape, ``server.enterprise_url``).
Every URL in the JSON, and every ``Link`` and ``Location``, is built from the base the
request used, so PyGithub's follow-up requests come back here.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import itertools
import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from core.testing.github_server.state import (
    DEFAULT_LOGIN,
    DOCS,
    PRIMARY_RATE_LIMIT_DOCS,
    RATE_LIMIT,
    RATE_LIMIT_DOCS,
    SAME_REPO,
    Fault,
    Issue,
    Repo,
    RequestRecord,
    SameRepo,
    State,
    View,
    dumps,
    error_body,
    page_count,
    parse_timestamp,
    status_message,
)

logger = logging.getLogger(__name__)

ENTERPRISE_PREFIX = "/api/v3"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100

_instances = itertools.count(1)
_HOST_HEADER = re.compile(r"^[A-Za-z0-9.\-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$")


@dataclass
class Response:
    status: int
    body: Any = None  # JSON data, or bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    counted: bool = True  # against the rate limit
    rate: tuple[int, int, int] | None = None  # (remaining, used, reset) instead of the counter


@dataclass
class _Request:
    method: str
    path: str  # without query and without the /api/v3 prefix
    pairs: list[tuple[str, str]]
    headers: Any
    api: str  # http://host:port[/api/v3]
    web: str  # http://host:port

    @property
    def query(self) -> dict[str, str]:
        return dict(self.pairs)


def _not_found() -> Response:
    return Response(404, error_body("Not Found"))


def _invalid(resource: str, name: str) -> Response:
    return Response(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": resource, "field": name, "code": "invalid"}],
            "documentation_url": DOCS,
        },
    )


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    bare = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == bare:
            return True
    return False


def _credential(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


class GitHubApp:
    """Turns one request into (status, headers, body), under the state's lock."""

    def __init__(self, state: State, address: Callable[[], str]) -> None:
        self.state = state
        self._address = address

    def handle(self, method: str, target: str, headers: Any) -> tuple[int, list, bytes]:
        request = self._parse(method, target, headers)
        authorization = headers.get("Authorization")
        credential = _credential(authorization)
        with self.state.lock:
            token = self.state.token
            authorized = token is None or credential == token
            fault = self.state.take_fault(request.path)
            if fault is not None:
                response = self._fault(fault)
            elif not authorized:
                response = Response(401, error_body("Bad credentials"), counted=False)
            elif credential is None and request.path == "/user":
                response = Response(401, error_body("Requires authentication"), counted=False)
            else:
                try:
                    response = self._dispatch(request, View(self.state, request.api, request.web))
                except Exception as exc:  # a bug here must show, not hang a client
                    logger.exception("GitHub test server failed on %s %s", method, target)
                    response = Response(500, error_body(f"Server error: {exc!r}"), counted=False)
            status, out_headers, body = self._finish(request, response, token is not None)
            self.state.record(
                RequestRecord(
                    method=method,
                    path=request.path,
                    query=request.query,
                    status=status,
                    if_none_match=headers.get("If-None-Match"),
                    authorized=authorized,
                )
            )
        return status, out_headers, body

    # -- request and response ------------------------------------------------------------------
    def _parse(self, method: str, target: str, headers: Any) -> _Request:
        parts = urlsplit(target)
        path = parts.path or "/"
        prefix = ""
        if path == ENTERPRISE_PREFIX or path.startswith(ENTERPRISE_PREFIX + "/"):
            prefix = ENTERPRISE_PREFIX
            path = path[len(ENTERPRISE_PREFIX) :] or "/"
        host = self.state.public_host or headers.get("Host") or ""
        if not _HOST_HEADER.match(host):
            host = self._address()
        web = f"http://{host}"
        return _Request(
            method=method.upper(),
            path=path,
            pairs=parse_qsl(parts.query, keep_blank_values=True),
            headers=headers,
            api=web + prefix,
            web=web,
        )

    def _fault(self, fault: Fault) -> Response:
        if fault.kind == "primary":
            body = fault.body or error_body(
                f"API rate limit exceeded for user ID {self.state.user_id(self.state.login)}.",
                PRIMARY_RATE_LIMIT_DOCS,
            )
            reset = int(time.time()) + fault.reset_in
            headers = dict(fault.headers)
            if fault.retry_after is not None:
                headers["retry-after"] = str(fault.retry_after)
            return Response(
                fault.status,
                body,
                headers,
                counted=False,
                rate=(0, self.state.rate_limit_total, reset),
            )
        if fault.kind == "secondary":
            body = fault.body or error_body(
                "You have exceeded a secondary rate limit. Please wait a few minutes before "
                "you try again. If you reach out to GitHub Support for help, please include "
                "the request ID 0000:0000:0000000:0000000:00000000.",
                RATE_LIMIT_DOCS,
            )
            headers = dict(fault.headers)
            if fault.retry_after is not None:
                headers["retry-after"] = str(fault.retry_after)
            return Response(fault.status, body, headers, counted=False)
        if fault.kind == "forbid":
            body = fault.body or error_body(
                "Resource not accessible by integration",
                "https://docs.github.com/rest/issues/issues#get-an-issue",
            )
            return Response(fault.status, body, dict(fault.headers), counted=False)
        body = fault.body if fault.body is not None else error_body(status_message(fault.status))
        return Response(fault.status, body, dict(fault.headers), counted=False)

    def _finish(
        self, request: _Request, response: Response, token_auth: bool
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        status = response.status
        body = response.body
        if body is None:
            payload = b""
        elif isinstance(body, bytes | bytearray):
            payload = bytes(body)
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = dumps(body)
        etag = None
        if request.method in ("GET", "HEAD") and status == 200:
            etag = f'W/"{hashlib.sha256(payload).hexdigest()}"'
            if _etag_matches(request.headers.get("If-None-Match"), etag):
                status, payload = 304, b""
                response.counted = False
        if response.counted:
            self.state.count_request()
        remaining, used, reset = response.rate or self.state.rate_window()
        headers = {
            "content-type": "application/json; charset=utf-8",
            "cache-control": "private, max-age=60, s-maxage=60",
            "vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
            "x-github-media-type": "github.v3; format=json",
            "x-github-api-version-selected": "2022-11-28",
            "x-ratelimit-limit": str(self.state.rate_limit_total),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": str(used),
            "x-ratelimit-resource": "core",
            "x-github-request-id": f"{len(self.state.requests) + 1:08X}",
        }
        if token_auth:
            headers["x-oauth-scopes"] = "repo"
        if etag is not None:
            headers["etag"] = etag
        headers.update({k.lower(): v for k, v in response.headers.items()})
        if status == 304:
            headers.pop("link", None)
        headers["content-length"] = str(len(payload))
        return status, list(headers.items()), payload

    # -- routes ----------------------------------------------------------------------------------
    def _dispatch(self, request: _Request, view: View) -> Response:
        segments = [unquote(s) for s in request.path.strip("/").split("/") if s]
        if request.method not in ("GET", "HEAD"):
            return _not_found()
        if segments == ["rate_limit"]:
            return Response(200, view.rate_limit(), counted=False)
        if segments == ["user"]:
            return Response(200, view.user(self.state.login, detail=True))
        if len(segments) >= 3 and segments[0] == "repos":
            repo, renamed = self.state.find_repo(f"{segments[1]}/{segments[2]}")
            if renamed is not None:
                return self._moved(request, renamed, segments[3:])
            if repo is None:
                return _not_found()
            return self._repo_route(request, view, repo, segments[3:])
        if len(segments) >= 2 and segments[0] == "repositories" and segments[1].isdigit():
            repo = self.state.repos.get(int(segments[1]))
            if repo is None:
                return _not_found()
            return self._repo_route(request, view, repo, segments[2:])
        return _not_found()

    def _moved(self, request: _Request, repo: Repo, rest: Sequence[str]) -> Response:
        location = f"{request.api}/repositories/{repo.id}"
        if rest:
            location += "/" + "/".join(rest)
        if request.pairs:
            location += "?" + urlencode(request.pairs)
        return Response(
            301,
            {
                "message": "Moved Permanently",
                "url": location,
                "documentation_url": "https://docs.github.com/rest/guides/"
                "best-practices-for-using-the-rest-api#follow-redirects",
            },
            {"location": location},
        )

    def _repo_route(
        self, request: _Request, view: View, repo: Repo, rest: Sequence[str]
    ) -> Response:
        if not rest:
            return Response(200, view.repo(repo, detail=True))
        head, tail = rest[0], list(rest[1:])
        if head == "issues":
            if not tail:
                return self._issues(request, view, repo)
            if not tail[0].isdigit() or len(tail) > 2:
                return _not_found()
            issue = repo.issues.get(int(tail[0]))
            missing = self._missing(issue)
            if missing is not None:
                return missing
            assert issue is not None
            if len(tail) == 1:
                return Response(200, view.issue(issue, detail=True))
            if tail[1] == "timeline":
                return self._page(request, view.timeline(issue))
            if tail[1] == "events":
                return self._page(request, view.events(issue))
            return _not_found()
        if head == "pulls":
            if not tail:
                return self._pulls(request, view, repo)
            if not tail[0].isdigit() or len(tail) > 2:
                return _not_found()
            issue = repo.issues.get(int(tail[0]))
            if issue is not None and issue.pull is None:
                return _not_found()
            missing = self._missing(issue)
            if missing is not None:
                return missing
            assert issue is not None
            assert issue.pull is not None
            if len(tail) == 1:
                return Response(200, view.pull(issue))
            if tail[1] == "files":
                return self._page(request, [view.file(issue, f) for f in issue.pull.files])
            if tail[1] == "commits":
                return self._page(request, [view.commit(repo, c) for c in issue.pull.commits])
            return _not_found()
        if head == "commits" and tail and len(tail) <= 2:
            commit = self.state.find_commit(repo, tail[0])
            if commit is None:
                return Response(422, error_body(f"No commit found for SHA: {tail[0]}"))
            if len(tail) == 1:
                return Response(200, view.commit(repo, commit, detail=True))
            if tail[1] == "pulls":
                pulls = [repo.issues[n] for n in commit.pulls if n in repo.issues]
                return self._page(
                    request,
                    [view.pull(p, detail=False) for p in pulls if p.deleted is None],
                )
        return _not_found()

    @staticmethod
    def _missing(issue: Issue | None) -> Response | None:
        if issue is None or issue.deleted == 404:
            return _not_found()
        if issue.deleted == 410:
            return Response(
                410,
                error_body(
                    "This issue was deleted",
                    "https://docs.github.com/rest/issues/issues#get-an-issue",
                ),
            )
        return None

    def _issues(self, request: _Request, view: View, repo: Repo) -> Response:
        query = request.query
        state = query.get("state", "open") or "open"
        sort = query.get("sort", "created") or "created"
        direction = query.get("direction", "desc") or "desc"
        if state not in ("open", "closed", "all"):
            return _invalid("Issue", "state")
        if sort not in ("created", "updated", "comments"):
            return _invalid("Issue", "sort")
        if direction not in ("asc", "desc"):
            return _invalid("Issue", "direction")
        since: datetime | None = None
        if query.get("since"):
            try:
                since = parse_timestamp(query["since"])
            except ValueError:
                return _invalid("Issue", "since")
        labels = [name for name in query.get("labels", "").split(",") if name]
        issues = self.state.list_issues(
            repo, state=state, since=since, sort=sort, direction=direction, labels=labels
        )
        return self._page(request, issues, render=view.issue)

    def _pulls(self, request: _Request, view: View, repo: Repo) -> Response:
        query = request.query
        state = query.get("state", "open") or "open"
        direction = query.get("direction", "desc") or "desc"
        if state not in ("open", "closed", "all"):
            return _invalid("PullRequest", "state")
        if direction not in ("asc", "desc"):
            return _invalid("PullRequest", "direction")
        sort = "updated" if query.get("sort") == "updated" else "created"
        issues = [
            i
            for i in self.state.list_issues(
                repo, state=state, since=None, sort=sort, direction=direction
            )
            if i.pull is not None
        ]
        return self._page(request, issues, render=lambda i: view.pull(i, detail=False))

    def _page(self, request: _Request, items: Sequence[Any], *, render=None) -> Response:
        query = request.query
        per_page = _int(query.get("per_page"), DEFAULT_PER_PAGE)
        per_page = DEFAULT_PER_PAGE if per_page < 1 else min(per_page, MAX_PER_PAGE)
        page = max(1, _int(query.get("page"), 1))
        pages = page_count(len(items), per_page)
        chunk = items[(page - 1) * per_page : page * per_page]
        body = [render(item) for item in chunk] if render else list(chunk)
        headers = {}
        links = []
        if page < pages:
            links.append(("next", page + 1))
            links.append(("last", pages))
        if page > 1:
            links.insert(0, ("prev", min(page - 1, pages)))
            links.append(("first", 1))
        if links:
            headers["link"] = ", ".join(
                f'<{self._page_url(request, n)}>; rel="{rel}"' for rel, n in links
            )
        return Response(200, body, headers)

    @staticmethod
    def _page_url(request: _Request, page: int) -> str:
        pairs = [(k, v) for k, v in request.pairs if k != "page"]
        pairs.append(("page", str(page)))
        return f"{request.api}{request.path}?{urlencode(pairs)}"


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


# -- HTTP plumbing -----------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection is dropped after this
    server: _HTTPServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, headers, body = self.server.app.handle(self.command, self.path, self.headers)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def version_string(self) -> str:
        return "GitHub.com"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection (keep-alive), every one of them joined by
    :meth:`close_connections`."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: GitHubApp, thread_prefix: str) -> None:
        self.app = app
        self.thread_prefix = thread_prefix
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host name up (getfqdn): not needed here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{self.thread_prefix}http-conn",
            daemon=True,
        )
        with self._conn_lock:
            self._conn_threads = {t for t in self._conn_threads if t.is_alive()}
            self._conn_threads.add(thread)
            self._connections.add(request)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # the client went away, or stop() shut the socket
        finally:
            with self._conn_lock:
                self._connections.discard(request)
            self.shutdown_request(request)

    def close_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
            threads = list(self._conn_threads)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join()
        with self._conn_lock:
            self._conn_threads.difference_update(threads)


def _check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the GitHub test server only listens on loopback addresses, not {host!r}")


# -- the server --------------------------------------------------------------------------------
class GitHubTestServer:
    """A local GitHub REST API for the real PyGithub::

        server = GitHubTestServer(token="test-token").start()
        server.add_repo("acme/widgets")
        number = server.add_issue("acme/widgets", title="Crash", labels=["bug"])
        gh = Github(auth=Auth.Token("test-token"), base_url=server.base_url)
        gh.get_repo("acme/widgets").get_issue(number).title  # "Crash"

    ``token=None`` accepts any or no credentials. The clock (``now``) starts at
    2026-01-01T00:00:00Z and only moves when told to (``advance``) or when a change
    (``update_*``, ``close_issue``) stamps ``updated_at`` one second later.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        login: str = DEFAULT_LOGIN,
        rate_limit: int = RATE_LIMIT,
    ) -> None:
        _check_loopback(host)
        self.host = host
        self._requested_port = port
        self._port = 0
        self.thread_prefix = f"github-test-{next(_instances)}-"
        self.state = State(token=token, login=login, rate_limit=rate_limit)
        self._app = GitHubApp(self.state, lambda: f"{self.host}:{self.port}")
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    # -- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def enterprise_url(self) -> str:
        return self.base_url + ENTERPRISE_PREFIX

    @property
    def public_host(self) -> str | None:
        """``host[:port]`` that every URL in the answers names (JSON, ``Link``,
        ``Location``) whatever host the request used; None (the default): the request's
        own. Cleared by :meth:`reset`."""
        return self.state.public_host

    @public_host.setter
    def public_host(self, value: str | None) -> None:
        with self.state.lock:
            self.state.public_host = value

    @property
    def token(self) -> str | None:
        return self.state.token

    @token.setter
    def token(self, value: str | None) -> None:
        with self.state.lock:
            self.state.token = value

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> GitHubTestServer:
        with self._lifecycle:
            if self._httpd is not None:
                return self
            port = self._port or self._requested_port
            httpd = _HTTPServer((self.host, port), self._app, self.thread_prefix)
            self._port = httpd.server_address[1]
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{self.thread_prefix}http-serve",
                daemon=True,
            )
            thread.start()
            self._httpd, self._serve_thread = httpd, thread
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, and join all threads."""
        with self._lifecycle:
            httpd, thread = self._httpd, self._serve_thread
            self._httpd = self._serve_thread = None
            if httpd is None or thread is None:
                return
            httpd.shutdown()
            thread.join()
            httpd.server_close()
            httpd.close_connections()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> GitHubTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Empty state, clock back to the start, faults and request log cleared, rate limit
        counter back to full, the token the server was created with."""
        self.state.reset()

    # -- clock ---------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.state.now

    def advance(self, seconds: float = 1) -> datetime:
        return self.state.advance(seconds)

    # -- data ------------------------------------------------------------------------------------
    def _view(self) -> View:
        return View(self.state, self.base_url, self.base_url)

    def add_repo(self, full_name: str, **options: Any) -> dict[str, Any]:
        """Create ``owner/name`` (options: description, private, default_branch,
        fork_of); returns its JSON."""
        with self.state.lock:
            repo = self.state.add_repo(full_name, **options)
            return self._view().repo(repo, detail=True)

    def rename_repo(self, old: str, new: str) -> None:
        self.state.rename_repo(old, new)

    def delete_repo(self, full_name: str) -> None:
        """Delete ``owner/name`` (a fork that held pull requests, say): it answers 404."""
        self.state.delete_repo(full_name)

    def add_issue(
        self,
        repo: str,
        *,
        title: str | None = None,
        body: str | None = None,
        state: str = "open",
        state_reason: str | None = None,
        labels: Iterable[str | dict[str, Any]] = (),
        user: str = DEFAULT_LOGIN,
        number: int | None = None,
    ) -> int:
        return self.state.add_issue(
            repo,
            title=title,
            body=body,
            state=state,
            state_reason=state_reason,
            labels=labels,
            user=user,
            number=number,
        )

    def update_issue(self, repo: str, number: int, **fields: Any) -> None:
        self.state.update_issue(repo, number, **fields)

    def close_issue(
        self,
        repo: str,
        number: int,
        state_reason: str | None = "completed",
        commit_id: str | None = None,
        *,
        commit_repo: str | None = None,
        actor: str | None = None,
    ) -> None:
        self.state.close_issue(
            repo,
            number,
            state_reason=state_reason,
            commit_id=commit_id,
            commit_repo=commit_repo,
            actor=actor,
        )

    def delete_issue(self, repo: str, number: int, status: int = 410) -> None:
        self.state.delete_issue(repo, number, status=status)

    def add_pull(
        self,
        repo: str,
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
        return self.state.add_pull(
            repo,
            title=title,
            body=body,
            state=state,
            merged=merged,
            head_repo=head_repo,
            files=files,
            commits=commits,
            merge_commit_sha=merge_commit_sha,
            number=number,
            user=user,
            labels=labels,
            head_ref=head_ref,
            draft=draft,
        )

    def update_pull(self, repo: str, number: int, **fields: Any) -> None:
        self.state.update_pull(repo, number, **fields)

    def cross_reference(
        self, *, issue: tuple[str, int], pr: tuple[str, int], actor: str | None = None
    ) -> None:
        self.state.cross_reference(issue=issue, pr=pr, actor=actor)

    def add_commit(
        self,
        repo: str,
        sha: str,
        pulls: Sequence[int] = (),
        *,
        message: str | None = None,
        author: str | None = None,
    ) -> str:
        return self.state.add_commit(repo, sha, pulls=pulls, message=message, author=author)

    # -- faults ----------------------------------------------------------------------------------
    def fail(
        self,
        path_pattern: str,
        status: int,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` requests whose path (no query, no ``/api/v3``) matches the
        regex get this response instead (body: JSON data, str or bytes; default GitHub's
        ``{"message": <reason phrase>, ...}``)."""
        self.state.add_fault(
            Fault(re.compile(path_pattern), status, times, body=body, headers=dict(headers or {}))
        )

    def rate_limit(
        self,
        status: int = 403,
        *,
        reset_in: int = 600,
        retry_after: int | None = None,
        times: int = 1,
        path_pattern: str = ".*",
        secondary: bool = False,
    ) -> None:
        """Queue rate-limit answers. Primary: ``x-ratelimit-remaining: 0`` and
        ``x-ratelimit-reset`` = real epoch now + ``reset_in``. Secondary: GitHub's
        "secondary rate limit" message, the counter unchanged. ``retry_after`` adds a
        ``retry-after`` header to either."""
        self.state.add_fault(
            Fault(
                re.compile(path_pattern),
                status,
                times,
                kind="secondary" if secondary else "primary",
                reset_in=reset_in,
                retry_after=retry_after,
            )
        )

    def forbid(
        self,
        path_pattern: str,
        *,
        times: int = 1,
        message: str = "Resource not accessible by integration",
    ) -> None:
        """403 that is not a rate limit (``x-ratelimit-remaining`` stays above 0)."""
        self.state.add_fault(
            Fault(
                re.compile(path_pattern),
                403,
                times,
                kind="forbid",
                body=error_body(message, "https://docs.github.com/rest/issues/issues#get-an-issue"),
            )
        )

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    # -- requests and the rate limit -------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        """The request log, oldest first (the live list: ``requests.clear()`` empties it)."""
        return self.state.requests

    def request_count(self, path_pattern: str | None = None) -> int:
        return self.state.request_count(path_pattern)

    @property
    def rate_remaining(self) -> int:
        return self.state.rate_window()[0]

    def set_rate_remaining(self, remaining: int) -> None:
        """Set what ``x-ratelimit-remaining`` says next (it is never enforced by itself:
        use :meth:`rate_limit` for refused requests)."""
        self.state.set_rate_remaining(remaining)
