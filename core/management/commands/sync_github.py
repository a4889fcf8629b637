"""Bring linked GitHub issues and pull requests, their items and their index
documents up to date (seed 002). Meant for cron; see docs/github.md.

Exit codes:
  0  done, nothing failed
  1  done, some links or repositories failed or will be retried (listed in the output
     and on the dashboard)
  2  another run is in progress
  3  not configured, the token was refused, GitHub is unreachable, or PyGithub cannot
     use GitHub's answers (a base URL naming another host than GitHub's URLs, say)
  4  stopped by GitHub's rate limit (what was done is kept; run again after the time shown)
"""

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from core.services.github.worker import RunReport, run

COUNT_LABELS = (
    ("repositories", "repositories listed"),
    ("repositories_unchanged", "  unchanged (304)"),
    ("repositories_failed", "repositories that failed"),
    ("repositories_waiting", "repositories backing off (skipped)"),
    ("repositories_later", "repositories of PRs only (not due)"),
    ("repositories_renamed", "repositories renamed or moved"),
    ("queued", "links queued as changed"),
    ("mappings", "links looked at"),
    ("issues_synced", "issues synced"),
    ("items_moved", "items moved to Testing"),
    ("left_alone", "closed as not planned / duplicate"),
    ("flagged_reopened", "reopened after Testing (flagged)"),
    ("prs_linked", "pull requests linked"),
    ("prs_updated", "pull requests updated"),
    ("documents_refreshed", "index documents refreshed"),
    ("backoff", "links backing off"),
    ("failed", "links failed"),
    ("deferred", "links left for the next run"),
)


class Command(BaseCommand):
    help = "Sync linked GitHub issues and pull requests: item status, PR links, index documents."

    def add_arguments(self, parser):
        parser.add_argument("--repo", metavar="OWNER/NAME", help="Only this repository.")
        parser.add_argument(
            "--batch-size",
            type=int,
            metavar="N",
            help="Most links looked at in this run (default: the admin's setting).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; write nothing."
        )

    def handle(self, *args, repo=None, batch_size=None, dry_run=False, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if repo is not None and repo.count("/") != 1:
            raise CommandError("--repo takes owner/name, e.g. --repo acme/widgets.")
        started = time.monotonic()
        repo = repo.lower() if repo else None  # GitHub names are case-insensitive
        report = run(repository=repo, batch_size=batch_size, dry_run=dry_run)
        self._summary(report, time.monotonic() - started)
        if report.exit_code:
            sys.exit(report.exit_code)

    def _summary(self, report: RunReport, seconds: float) -> None:
        out = self.stdout
        prefix = "Dry run (nothing written): " if report.dry_run else ""
        run_id = f" #{report.run_id}" if report.run_id else ""
        out.write(f"{prefix}GitHub sync{run_id}: {report.status} in {seconds:.1f} s")
        for key, label in COUNT_LABELS:
            if report.counts.get(key):
                out.write(f"  {label:<38} {report.counts[key]:>7}")
        remaining = "?" if report.rate_limit_remaining is None else report.rate_limit_remaining
        out.write(
            f"  {'requests to GitHub':<38} {report.requests:>7}  (rate limit left: {remaining})"
        )
        for line in report.errors[:20]:
            self.stderr.write(f"  {line}")
        if len(report.errors) > 20:
            self.stderr.write(f"  ... and {len(report.errors) - 20} more (see the dashboard)")
        if report.message:
            (self.stdout if report.exit_code == 0 else self.stderr).write(report.message)
