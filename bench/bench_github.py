"""Benchmark of the GitHub worker against the GitHub-shaped test server.

    .venv/bin/python bench/bench_github.py [--repos 10] [--links 1000] [--changed 0.01]

In a fresh temporary directory (SQLite database; `var/` is never touched), on loopback
only, in one process:

1. 10 repositories with 100 issues each on the test server, 1,000 items each linked to
   one issue, and a first `sync_github` run so every link is synced and every repository
   has its checkpoint and ETag;
2. 1% of the issues are closed on GitHub;
3. **Agira's run**: `worker.run()` (conditional listing per repository, then only the
   changed links), against
4. **a naive per-link poll** over the same state: for every link, the issue and its
   timeline through PyGithub, as a worker without listings or ETags has to do (seed 002's
   "fetch the external status" for every mapping).

Both use the same PyGithub client settings with no pause between requests, so the wall
times compare the work; the requests each sends are counted by the server. The figure that
matters on GitHub is the request count: PyGithub's default pause alone (0.25 s per
request) and the rate limit (5,000 per hour) both scale with it; the projected time at
that pause is printed too. The sync engine is off: the index is measured elsewhere.
Asserts nothing on time; prints the figures and exits 0.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

DEFAULT_PAUSE = 0.25  # PyGithub's seconds_between_requests
TOKEN = "bench-token"  # noqa: S105 - the test server's token


def setup(folder: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="agira.settings",
        AGIRA_ENV="test",
        AGIRA_VAR_DIR=str(folder),
        DATABASE_URL=f"sqlite:///{folder / 'bench.sqlite3'}",
        AGIRA_SYNC_ENABLED="false",
        AGIRA_QDRANT_ENABLED="false",
        AGIRA_GRAPH_ENABLED="false",  # the indexes alone: the graph is another target
        AGIRA_GITHUB_SECONDS_BETWEEN_REQUESTS="0",
        AGIRA_GITHUB_RETRY_BACKOFF="0",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def populate(server, repos: int, links: int) -> list[tuple[str, int]]:
    from core.models import ExternalIssueMapping, GitHubConfiguration, Item, Organisation, Project

    GitHubConfiguration.objects.update_or_create(
        pk=1,
        defaults={
            "enabled": True,
            "base_url": server.base_url,
            "token": TOKEN,
            "batch_size": links,
        },
    )
    organisation = Organisation.objects.create(name="Bench")
    project = Project.objects.create(organisation=organisation, name="Bench")
    issues = []
    per_repo = links // repos
    for r in range(repos):
        name = f"bench/repo{r:02d}"
        server.add_repo(name)
        for i in range(per_repo):
            issues.append((name, server.add_issue(name, title=f"Issue {i} of {name}")))
            server.advance(60)  # issues are opened over time, not all in one second
    items = Item.objects.bulk_create(
        Item(project=project, title=f"Item for {repo}#{number}") for repo, number in issues
    )
    ExternalIssueMapping.objects.bulk_create(
        ExternalIssueMapping(item=item, repository=repo, number=number)
        for item, (repo, number) in zip(items, issues, strict=True)
    )
    return issues


def naive_poll(server) -> None:
    """Every link: its issue, and the timeline of the closed ones, one after the other."""
    from github import Auth, Github

    from core.models import ExternalIssueMapping

    gh = Github(
        auth=Auth.Token(TOKEN),
        base_url=server.base_url,
        per_page=100,
        seconds_between_requests=0,
    )
    repositories = {}
    try:
        for repository, number in ExternalIssueMapping.objects.values_list("repository", "number"):
            if repository not in repositories:
                repositories[repository] = gh.get_repo(repository)
            issue = repositories[repository].get_issue(number)
            if issue.state == "closed":  # what a poll is for
                list(issue.get_timeline())
    finally:
        gh.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=10)
    parser.add_argument("--links", type=int, default=1000)
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="agira-bench-github-"))
    try:
        setup(folder)
        from core.services.github import worker
        from core.testing.github_server import GitHubTestServer
        from core.testing.weaviate_server.loopback import LoopbackGuard

        server = GitHubTestServer(token=TOKEN)
        server.start()
        with LoopbackGuard() as guard:
            issues = populate(server, args.repos, args.links)
            first = worker.run()
            assert first.exit_code == 0, first.message
            changed = random.Random(7).sample(issues, max(1, int(len(issues) * args.changed)))
            for repo, number in changed:
                server.close_issue(repo, number, state_reason="completed")

            server.requests.clear()
            started = time.perf_counter()
            report = worker.run()
            agira_seconds = time.perf_counter() - started
            agira_requests = server.request_count()
            assert report.exit_code == 0, report.message
            # The worker counts at the transport: what it reports is what the server saw.
            assert report.requests == agira_requests, (report.requests, agira_requests)
            assert report.counts["items_moved"] == len(changed), report.counts

            server.requests.clear()
            started = time.perf_counter()
            naive_poll(server)
            naive_seconds = time.perf_counter() - started
            naive_requests = server.request_count()

            server.requests.clear()
            third = worker.run()
            unchanged_requests = server.request_count()
            assert third.requests == unchanged_requests, (third.requests, unchanged_requests)
            unchanged_304 = sum(1 for r in server.requests if r.status == 304)
        server.stop()
        assert not guard.blocked, guard.blocked

        print(
            f"{args.links:,} links in {args.repos} repositories, "
            f"{len(changed)} issues changed ({args.changed:.0%})"
        )
        print(f"{'':28}{'requests':>10}{'wall s':>10}{'at 0.25 s/request':>20}")
        for label, requests, seconds in (
            ("Agira (listing + changed)", agira_requests, agira_seconds),
            ("naive per-link poll", naive_requests, naive_seconds),
        ):
            projected = seconds + requests * DEFAULT_PAUSE
            print(f"{label:28}{requests:>10,}{seconds:>10.2f}{projected:>19.1f}s")
        naive_paused = naive_seconds + naive_requests * DEFAULT_PAUSE
        agira_paused = agira_seconds + agira_requests * DEFAULT_PAUSE
        print(
            f"ratio naive / Agira: requests {naive_requests / agira_requests:.1f}x, "
            f"wall time {naive_seconds / agira_seconds:.1f}x, "
            f"at PyGithub's default pause {naive_paused / agira_paused:.1f}x"
        )
        print(
            f"a third run with nothing changed: {unchanged_requests} requests, "
            f"{unchanged_304} of them 304 Not Modified; {third.counts['mappings']} links looked at"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
