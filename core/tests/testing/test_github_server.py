"""The GitHub-shaped test server through the real PyGithub: JSON shapes, listings and
pagination, timelines, conditional requests, renames, errors and rate limits."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from github import (
    Auth,
    BadCredentialsException,
    Github,
    GithubException,
    GithubRetry,
    RateLimitExceededException,
    UnknownObjectException,
)

from core.testing.github_server import START, GitHubTestServer
from core.testing.github_server.pytest_plugin import connect

REPO = "acme/widgets"


@pytest.fixture
def server(github_server):
    github_server.add_repo(REPO)
    return github_server


@pytest.fixture
def gh(server):
    client = connect(server, per_page=100)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def lazy_gh(server):
    """A client that sends no request until an attribute needs one."""
    client = connect(server, lazy=True)
    try:
        yield client
    finally:
        client.close()


def _link(headers) -> dict[str, str]:
    links = {}
    for part in headers["link"].split(", "):
        url, rel = part.split("; ")
        links[rel[5:-1]] = url[1:-1]
    return links


# -- shapes --------------------------------------------------------------------------------------
def test_repository_issue_and_pull_request_fields(server, gh):
    created = server.add_repo("acme/lib")
    number = server.add_issue(
        REPO, title="Crash on save", body="Steps: click save.", labels=["bug"], user="alice"
    )
    server.advance(5)
    pr = server.add_pull(
        REPO,
        title="Fix the crash",
        body=f"Fixes #{number}",
        merged=True,
        files=["core/save.py"],
        merge_commit_sha="a1b2c3d4",
        user="bob",
    )

    repo = gh.get_repo(REPO)
    assert (repo.full_name, repo.name, repo.owner.login) == (REPO, "widgets", "acme")
    assert repo.url == f"{server.base_url}/repos/{REPO}"
    assert repo.html_url == f"{server.base_url}/{REPO}"
    assert repo.open_issues_count == 1
    assert gh.get_repo("acme/lib").id == created["id"] != repo.id

    issue = repo.get_issue(number)
    assert (issue.number, issue.title, issue.body, issue.state) == (
        number,
        "Crash on save",
        "Steps: click save.",
        "open",
    )
    assert [label.name for label in issue.labels] == ["bug"]
    assert issue.labels[0].color == "d73a4a"
    assert issue.user.login == "alice"
    assert issue.created_at == issue.updated_at == START
    assert issue.closed_at is None
    assert issue.state_reason is None
    assert issue.pull_request is None
    assert issue.html_url == f"{server.base_url}/{REPO}/issues/{number}"

    pull = repo.get_pull(pr)
    assert (pull.number, pull.title, pull.body, pull.state) == (
        pr,
        "Fix the crash",
        f"Fixes #{number}",
        "closed",
    )
    assert pull.merged is True
    assert pull.merged_at == pull.closed_at == START + timedelta(seconds=5)
    assert pull.merge_commit_sha == "a1b2c3d4"
    assert pull.user.login == "bob"
    assert pull.head.repo.full_name == REPO
    assert pull.head.ref == f"pr-{pr}"
    assert len(pull.head.sha) == 40
    assert (pull.base.ref, pull.base.repo.full_name) == ("main", REPO)
    assert pull.html_url == f"{server.base_url}/{REPO}/pull/{pr}"
    assert (pull.changed_files, pull.additions, pull.deletions) == (1, 1, 1)

    as_issue = repo.get_issue(pr)  # a pull request is an issue too, numbered with them
    assert as_issue.pull_request.html_url == pull.html_url
    assert as_issue.state_reason is None


def test_deleted_fork_and_live_fork_heads(server, gh):
    gone = server.add_pull(REPO, title="Rewrite", state="closed", head_repo=None)
    forked = server.add_pull(REPO, title="Tweak", head_repo="fork-owner/widgets")

    repo = gh.get_repo(REPO)
    deleted = repo.get_pull(gone)
    assert deleted.head.repo is None
    assert deleted.head.ref == f"pr-{gone}"
    assert (deleted.state, deleted.merged) == ("closed", False)
    fork = repo.get_pull(forked).head.repo
    assert (fork.full_name, fork.fork) == ("fork-owner/widgets", True)
    assert gh.get_repo("fork-owner/widgets").parent.full_name == REPO


# -- listings ----------------------------------------------------------------------------------
def test_issue_listing_state_since_sort_and_direction(server, gh):
    first = server.add_issue(REPO, title="first")
    server.advance(10)
    second = server.add_issue(REPO, title="second")
    server.advance(10)
    third = server.add_issue(REPO, title="third")
    pr = server.add_pull(REPO, title="a pull request")
    checkpoint = server.advance(10)
    server.update_issue(REPO, first, title="first, edited")  # updated at checkpoint + 1 s
    server.close_issue(REPO, second, state_reason="not_planned")  # checkpoint + 2 s

    repo = gh.get_repo(REPO)

    def numbers(**kwargs):
        return [i.number for i in repo.get_issues(**kwargs)]

    assert numbers() == [pr, third, first]  # open, newest created first
    assert numbers(state="closed") == [second]
    assert numbers(state="all", direction="asc") == [first, second, third, pr]
    assert numbers(state="all", sort="updated") == [second, first, pr, third]
    assert numbers(state="all", since=checkpoint) == [second, first]
    assert numbers(state="all", since=checkpoint + timedelta(seconds=2)) == [second]
    listed = {i.number: i for i in repo.get_issues(state="all")}
    assert listed[pr].pull_request is not None
    assert listed[first].pull_request is None
    assert listed[second].state_reason == "not_planned"
    assert listed[first].updated_at == checkpoint + timedelta(seconds=1)


def test_pagination_over_more_than_a_hundred_issues(server, gh):
    for i in range(250):
        server.add_issue(REPO, title=f"issue {i}")
    server.requests.clear()

    issues = list(gh.get_repo(REPO).get_issues(state="all"))

    assert [i.number for i in issues] == list(range(250, 0, -1))
    assert server.request_count(r"/issues$") == 3  # ceil(250 / 100)
    assert [r.query.get("page") for r in server.requests if r.path.endswith("/issues")] == [
        None,
        "2",
        "3",
    ]

    status, headers, _ = gh.requester.requestJson(
        "GET", f"/repos/{REPO}/issues", parameters={"state": "all", "per_page": 100, "page": 2}
    )
    assert status == 200
    links = {rel: urlsplit(url) for rel, url in _link(headers).items()}
    assert list(links) == ["prev", "next", "last", "first"]  # GitHub's order
    for rel, page in (("prev", "1"), ("next", "3"), ("last", "3"), ("first", "1")):
        assert f"{links[rel].scheme}://{links[rel].netloc}" == server.base_url
        assert links[rel].path == f"/repos/{REPO}/issues"
        assert dict(parse_qsl(links[rel].query)) == {
            "state": "all",
            "per_page": "100",
            "page": page,
        }
    _, headers, body = gh.requester.requestJson("GET", f"/repos/{REPO}/issues")
    assert body.count('"number"') == 30  # GitHub's default page size
    assert _link(headers)["last"] == f"{server.base_url}/repos/{REPO}/issues?page=9"


def test_enterprise_prefix_serves_the_same_api_and_keeps_it_in_links(server):
    for i in range(150):
        server.add_issue(REPO, title=f"issue {i}")
    client = connect(server, base_url=server.enterprise_url, per_page=100)
    try:
        repo = client.get_repo(REPO)
        assert repo.url == f"{server.enterprise_url}/repos/{REPO}"
        assert repo.html_url == f"{server.base_url}/{REPO}"
        assert len(list(repo.get_issues())) == 150
    finally:
        client.close()
    assert server.request_count(r"^/repos/acme/widgets/issues$") == 2
    assert server.requests[-1].query["page"] == "2"


# -- timelines, files, commits -----------------------------------------------------------------
def test_timeline_cross_references_and_the_closing_commit(server, gh):
    server.add_repo("other/repo")
    number = server.add_issue(REPO, title="Slow search")
    here = server.add_pull(REPO, title="Index the title", merged=True, merge_commit_sha="feed01")
    there = server.add_pull("other/repo", title="Faster tokenizer")
    server.cross_reference(issue=(REPO, number), pr=(REPO, here))
    server.cross_reference(issue=(REPO, number), pr=("other/repo", there))
    server.close_issue(REPO, number, state_reason="completed", commit_id="feed01")

    issue = gh.get_repo(REPO).get_issue(number)
    events = list(issue.get_timeline())

    assert [e.event for e in events] == ["cross-referenced", "cross-referenced", "closed"]
    sources = [(e.source.issue.repository.full_name, e.source.issue.number) for e in events[:2]]
    assert sources == [(REPO, here), ("other/repo", there)]
    source = events[0].source
    assert source.type == "issue"
    assert source.issue.pull_request.html_url.endswith(f"/{REPO}/pull/{here}")
    assert source.issue.state == "closed"
    assert events[1].source.issue.state == "open"
    closed = events[2]
    assert closed.commit_id == "feed01"
    assert closed.commit_url == f"{server.base_url}/repos/{REPO}/commits/feed01"
    assert closed.created_at == server.now
    assert closed.actor.login == "octocat"
    assert (issue.state, issue.state_reason, issue.closed_at) == ("closed", "completed", server.now)
    assert [e.event for e in issue.get_events()] == ["closed"]


def test_reopening_adds_an_event_and_clears_closed_at(server, gh):
    number = server.add_issue(REPO)
    server.close_issue(REPO, number)
    server.update_issue(REPO, number, state="open")

    issue = gh.get_repo(REPO).get_issue(number)
    assert (issue.state, issue.state_reason, issue.closed_at) == ("open", "reopened", None)
    assert issue.updated_at == START + timedelta(seconds=2) == server.now
    assert [e.event for e in issue.get_timeline()] == ["closed", "reopened"]


def test_pull_request_files_and_commits(server, gh):
    pr = server.add_pull(
        REPO,
        files=[
            "core/save.py",
            {
                "filename": "docs/save.md",
                "status": "added",
                "additions": 3,
                "deletions": 0,
                "changes": 3,
                "patch": "@@ -0,0 +1,3 @@\n+a\n+b\n+c",
            },
        ],
        commits=["Guard against an empty title", "Test the empty title"],
    )
    pull = gh.get_repo(REPO).get_pull(pr)

    files = list(pull.get_files())
    assert [(f.filename, f.status, f.additions, f.deletions, f.changes) for f in files] == [
        ("core/save.py", "modified", 1, 1, 2),
        ("docs/save.md", "added", 3, 0, 3),
    ]
    assert files[1].patch == "@@ -0,0 +1,3 @@\n+a\n+b\n+c"
    commits = list(pull.get_commits())
    assert [c.commit.message for c in commits] == [
        "Guard against an empty title",
        "Test the empty title",
    ]
    assert pull.commits == 2
    # Each commit of a pull request lists it among its pull requests, as on GitHub.
    assert [p.number for p in gh.get_repo(REPO).get_commit(commits[0].sha).get_pulls()] == [pr]


def test_commit_pulls(server, gh):
    merged = server.add_pull(REPO, title="one", merged=True, merge_commit_sha="abc123")
    other = server.add_pull(REPO, title="two")
    server.add_commit(REPO, "abc123", pulls=[other])

    pulls = list(gh.get_repo(REPO).get_commit("abc123").get_pulls())

    assert [(p.number, p.title) for p in pulls] == [(merged, "one"), (other, "two")]
    assert pulls[0].merged_at is not None
    with pytest.raises(GithubException) as caught:
        gh.get_repo(REPO).get_commit("0000000")
    assert caught.value.status == 422


# -- conditional requests and the rate limit ---------------------------------------------------
def test_conditional_listing_answers_304_and_does_not_count(server, gh):
    server.add_issue(REPO, title="one")
    params = {"state": "all", "since": "2026-01-01T00:00:00Z", "per_page": 100}
    url = f"/repos/{REPO}/issues"

    status, headers, body = gh.requester.requestJson("GET", url, parameters=params)
    assert status == 200
    etag = headers["etag"]
    assert etag.startswith('W/"')
    remaining = gh.requester.rate_limiting[0]
    assert remaining == int(headers["x-ratelimit-remaining"]) == 4999

    status, headers, body = gh.requester.requestJson(
        "GET", url, parameters=params, headers={"If-None-Match": etag}
    )
    assert (status, body) == (304, "")
    assert gh.requester.rate_limiting == (remaining, 5000)
    assert server.requests[-1].if_none_match == etag
    assert server.request_count() == 2

    server.update_issue(REPO, 1, title="one, edited")
    status, headers, _ = gh.requester.requestJson(
        "GET", url, parameters=params, headers={"If-None-Match": etag}
    )
    assert status == 200
    assert headers["etag"] != etag
    assert int(headers["x-ratelimit-remaining"]) == remaining - 1
    assert gh.get_rate_limit().resources.core.remaining == remaining - 1  # not counted either


def test_rate_limit_headers_on_every_response(server, gh):
    gh.get_repo(REPO)
    headers = gh.get_repo(REPO).raw_headers
    assert headers["x-ratelimit-limit"] == "5000"
    assert headers["x-ratelimit-remaining"] == "4998"
    assert headers["x-ratelimit-used"] == "2"
    assert headers["x-ratelimit-resource"] == "core"
    assert int(headers["x-ratelimit-reset"]) > time.time()
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert server.rate_remaining == 4998
    server.set_rate_remaining(7)
    gh.get_repo(REPO)
    assert gh.rate_limiting == (6, 5000)


# -- renames ---------------------------------------------------------------------------------------
def test_renamed_repository_answers_301_and_pygithub_follows(server, lazy_gh):
    number = server.add_issue(REPO, title="Still here")
    server.rename_repo(REPO, "acme/gadgets")

    issue = lazy_gh.get_repo(REPO).get_issue(number)
    assert issue.title == "Still here"
    assert issue.url.endswith(f"/repos/acme/gadgets/issues/{number}")
    first, second = server.requests
    assert (first.path, first.status) == (f"/repos/{REPO}/issues/{number}", 301)
    assert second.path.startswith("/repositories/")
    assert second.path.endswith(f"/issues/{number}")
    assert second.status == 200

    repo = lazy_gh.get_repo("acme/gadgets")
    assert repo.full_name == "acme/gadgets"
    assert lazy_gh.get_repo(repo.id).full_name == "acme/gadgets"  # /repositories/{id}

    # The Location keeps the query; PyGithub follows only its path, so the query is lost.
    raw = requests.get(
        f"{server.base_url}/repos/{REPO}/issues?state=closed",
        headers={"Authorization": "token test-token"},
        allow_redirects=False,
        timeout=5,
    )
    assert raw.status_code == 301
    assert raw.headers["location"] == (
        f"{server.base_url}/repositories/{repo.id}/issues?state=closed"
    )
    raw.close()
    status, _, _ = lazy_gh.requester.requestJson(
        "GET", f"/repos/{REPO}/issues", parameters={"state": "closed"}
    )
    assert status == 200
    redirect, followed = server.requests[-2:]
    assert (redirect.status, redirect.query) == (301, {"state": "closed"})
    assert (followed.path, followed.query) == (f"/repositories/{repo.id}/issues", {})


# -- errors --------------------------------------------------------------------------------------
def test_missing_deleted_and_unauthorized(server, gh):
    gone = server.add_issue(REPO)
    hidden = server.add_issue(REPO)
    server.delete_issue(REPO, gone)
    server.delete_issue(REPO, hidden, status=404)
    repo = gh.get_repo(REPO)

    with pytest.raises(UnknownObjectException):
        repo.get_issue(999)
    with pytest.raises(UnknownObjectException):
        repo.get_issue(hidden)
    with pytest.raises(UnknownObjectException):
        gh.get_repo("acme/nothing")
    with pytest.raises(GithubException) as caught:
        repo.get_issue(gone)
    assert caught.value.status == 410
    assert caught.value.data["message"] == "This issue was deleted"
    assert [i.number for i in repo.get_issues(state="all")] == []

    wrong = connect(server, auth=Auth.Token("wrong"))
    anonymous = Github(base_url=server.base_url, retry=None, seconds_between_requests=0)
    try:
        with pytest.raises(BadCredentialsException):
            wrong.get_repo(REPO)
        with pytest.raises(BadCredentialsException):
            anonymous.get_repo(REPO)
    finally:
        wrong.close()
        anonymous.close()
    assert [r.authorized for r in server.requests[-2:]] == [False, False]
    assert [r.status for r in server.requests[-2:]] == [401, 401]


def test_no_token_accepts_anyone(server):
    server.token = None
    client = Github(base_url=server.base_url, retry=None, seconds_between_requests=0)
    try:
        assert client.get_repo(REPO).full_name == REPO
    finally:
        client.close()
    assert server.requests[-1].authorized is True


def test_forbidden_is_not_a_rate_limit(server, gh):
    number = server.add_issue(REPO)
    repo = gh.get_repo(REPO)
    server.forbid(r"/issues/\d+$")

    with pytest.raises(GithubException) as caught:
        repo.get_issue(number)

    assert caught.value.status == 403
    assert not isinstance(caught.value, RateLimitExceededException)
    assert int(caught.value.headers["x-ratelimit-remaining"]) > 0
    assert repo.get_issue(number).number == number  # times=1


def test_primary_and_secondary_rate_limits(server, gh):
    number = server.add_issue(REPO)
    repo = gh.get_repo(REPO)

    server.rate_limit(reset_in=600)
    with pytest.raises(RateLimitExceededException) as caught:
        repo.get_issue(number)
    headers = caught.value.headers
    assert headers["x-ratelimit-remaining"] == "0"
    assert abs(int(headers["x-ratelimit-reset"]) - (time.time() + 600)) < 5
    assert caught.value.data["message"].startswith("API rate limit exceeded for")

    server.rate_limit(secondary=True, retry_after=30)
    with pytest.raises(RateLimitExceededException) as caught:
        repo.get_issue(number)
    assert caught.value.headers["retry-after"] == "30"
    assert int(caught.value.headers["x-ratelimit-remaining"]) > 0

    # PyGithub maps only 403 to RateLimitExceededException; a 429 is a plain GithubException.
    server.rate_limit(429, path_pattern=r"/issues/")
    with pytest.raises(GithubException) as caught:
        repo.get_issue(number)
    assert caught.value.status == 429
    assert repo.get_issue(number).number == number


def test_rate_limit_with_retries_raises_instead_of_waiting_past_the_cap(server):
    number = server.add_issue(REPO)
    client = connect(server, retry=GithubRetry(total=3, backoff_factor=0, max_rate_limit_wait=5))
    try:
        server.rate_limit(reset_in=600)
        with pytest.raises(RateLimitExceededException):
            client.get_repo(REPO).get_issue(number)
    finally:
        client.close()


def test_fail_then_success(server, gh):
    number = server.add_issue(REPO)
    repo = gh.get_repo(REPO)
    server.fail(r"/issues/\d+$", 502, times=1)

    with pytest.raises(GithubException) as caught:
        repo.get_issue(number)
    assert (caught.value.status, caught.value.data["message"]) == (502, "Bad Gateway")
    assert repo.get_issue(number).number == number

    server.fail(r"/issues/\d+$", 500, body="oops", headers={"content-type": "text/plain"})
    with pytest.raises(GithubException) as caught:
        repo.get_issue(number)
    assert caught.value.status == 500


def test_github_retry_rides_over_server_errors(server):
    number = server.add_issue(REPO)
    client = connect(server, lazy=True, retry=GithubRetry(total=3, backoff_factor=0))
    try:
        server.fail(r"/issues/\d+$", 503, times=2)
        assert client.get_repo(REPO).get_issue(number).title == f"Issue {number}"
        assert [r.status for r in server.requests] == [503, 503, 200]

        server.fail(r"/issues/\d+$", 502, times=4)
        with pytest.raises(requests.exceptions.RetryError):
            client.get_repo(REPO).get_issue(number).title  # noqa: B018
    finally:
        client.close()


# -- clock, reset, users -------------------------------------------------------------------------
def test_clock_and_reset(server, gh):
    assert server.now == START
    assert server.advance(30) == START + timedelta(seconds=30)
    number = server.add_issue(REPO)
    server.update_issue(REPO, number, labels=["bug", "help wanted"])
    issue = gh.get_repo(REPO).get_issue(number)
    assert issue.created_at == START + timedelta(seconds=30)
    assert issue.updated_at == START + timedelta(seconds=31)
    assert [label.name for label in issue.labels] == ["bug", "help wanted"]
    server.fail(".*", 500, times=5)
    server.token = "another"

    server.reset()

    assert server.now == START
    assert server.token == "test-token"
    assert server.requests == []
    assert gh.get_user().login == "octocat"  # no fault left
    with pytest.raises(UnknownObjectException):
        gh.get_repo(REPO)


def test_user_and_rate_limit_endpoints(server, gh):
    user = gh.get_user()
    assert user.login == "octocat"
    core = gh.get_rate_limit().resources.core
    assert (core.limit, core.remaining) == (5000, 4999)
    with pytest.raises(UnknownObjectException):
        gh.requester.requestJsonAndCheck("GET", "/no/such/thing")


def test_concurrent_clients_while_the_state_changes(server):
    numbers = [server.add_issue(REPO, title=f"issue {i}") for i in range(20)]
    errors: list[BaseException] = []

    def read() -> None:
        client = connect(server, lazy=True)
        try:
            repo = client.get_repo(REPO)
            for number in numbers:
                assert repo.get_issue(number).title == f"issue {number - 1}"
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for number in numbers:
        server.update_issue(REPO, number, body="changed")
    for thread in threads:
        thread.join()
    assert errors == []
    assert server.request_count(r"/issues/\d+$") == 80


# -- lifecycle -----------------------------------------------------------------------------------
def test_stop_closes_the_port_and_joins_every_thread():
    server = GitHubTestServer().start()
    server.add_repo(REPO)
    client = connect(server)
    try:
        assert client.get_repo(REPO).full_name == REPO  # leaves a keep-alive connection open
        assert any(t.name.endswith("http-conn") for t in threading.enumerate())
    finally:
        server.stop()
        client.close()
    assert not [t for t in threading.enumerate() if t.name.startswith(server.thread_prefix)]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()

    server.start()  # the same port again
    try:
        client = connect(server)
        try:
            assert client.get_repo(REPO).full_name == REPO
        finally:
            client.close()
    finally:
        server.stop()


def test_only_loopback():
    with pytest.raises(ValueError, match="loopback"):
        GitHubTestServer(host="0.0.0.0")  # noqa: S104
