"""Reconcile the index targets with the database (cron-safe).

Exit codes (see docs/operations.md):
  0  every chosen target is in sync
  1  some objects failed (the rest was done; rerun or look at the failed records)
  2  another run holds a target's lock (nothing was done for that target)
  3  a target is unreachable or misconfigured
  4  the index differs and the run was told not to change it: a --dry-run that found
     work, or orphans left by --no-delete
With several targets the most serious outcome wins (3 > 2 > 1 > 4 > 0). "in sync" is
printed only when the index equals the database for the chosen scope.
"""

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from core.services.index.documents import TYPE_NAMES
from core.services.index.reconcile import (
    ACTIONS,
    EXIT_UNAVAILABLE,
    Progress,
    ReconcileReport,
    reconcile,
)
from core.services.index.targets.base import TargetUnavailable

LOG_EVERY = 10.0  # seconds between progress lines when not on a terminal


class BarProgress(Progress):
    """A tqdm bar on a terminal."""

    def __init__(self, stream):
        self.stream = stream
        self.bar = None

    def start(self, label, total):
        from tqdm import tqdm

        self.finish()
        self.bar = tqdm(total=total, desc=label, unit="obj", file=self.stream, leave=False)

    def advance(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def finish(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LogProgress(Progress):
    """Plain lines, at most one every LOG_EVERY seconds, and one per step."""

    def __init__(self, write):
        self.write = write
        self.label = ""
        self.total = None
        self.done = 0
        self.last = 0.0
        self.open = False

    def start(self, label, total):
        self.finish()
        self.label, self.total, self.done, self.last = label, total, 0, time.monotonic()
        self.open = True

    def _line(self) -> str:
        if self.total:
            return f"{self.label}: {self.done}/{self.total} ({100 * self.done // self.total}%)"
        return f"{self.label}: {self.done}"

    def advance(self, n):
        self.done += n
        if time.monotonic() - self.last >= LOG_EVERY:
            self.last = time.monotonic()
            self.write(self._line())

    def finish(self):
        if self.open:
            self.write(self._line() + " done")
            self.open = False


class Command(BaseCommand):
    help = (
        "Bring the index exactly in line with the database: create what is missing, "
        "update what differs, delete orphans. Exit codes: 0 in sync, 1 some objects "
        "failed, 2 another run holds the lock, 3 index unreachable or misconfigured, "
        "4 differences left (a --dry-run that found work, or --no-delete orphans)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project-id", type=int, default=None, help="Only this project.")
        parser.add_argument(
            "--type",
            dest="types",
            nargs="+",
            action="extend",
            choices=TYPE_NAMES,
            metavar="T",
            help=f"Only these types ({', '.join(TYPE_NAMES)}).",
        )
        parser.add_argument(
            "--target",
            choices=["weaviate", "embedded", "qdrant", "neo4j", "graph"],
            default=None,
            help="Only this target (default: every active one).",
        )
        parser.add_argument("--full", action="store_true", help="Rewrite every object.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be done; write nothing."
        )
        parser.add_argument("--batch-size", type=int, default=500, help="Objects per batch.")
        parser.add_argument("--no-delete", action="store_true", help="Leave orphans alone.")
        parser.add_argument(
            "--force", action="store_true", help="Do not ask before --full on a terminal."
        )

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        full, dry_run = options["full"], options["dry_run"]
        delete = not options["no_delete"]
        interactive = sys.stdin is not None and sys.stdin.isatty()
        if full and delete and not dry_run and not options["force"] and interactive:
            answer = input(
                "--full rewrites every object and deletes orphans from the index. Continue? [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                self.stdout.write("Nothing done.")
                return
        on_terminal = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        progress = BarProgress(sys.stderr) if on_terminal else LogProgress(self.stdout.write)
        started = time.monotonic()
        try:
            report = reconcile(
                target=options["target"],
                types=options["types"],
                project_id=options["project_id"],
                full=full,
                dry_run=dry_run,
                batch_size=options["batch_size"],
                delete=delete,
                progress=progress,
            )
        except TargetUnavailable as exc:
            self.stderr.write(f"sync_weaviate: {exc}")
            sys.exit(EXIT_UNAVAILABLE)
        self._summary(report, dry_run=dry_run, seconds=time.monotonic() - started)
        if report.exit_code:
            sys.exit(report.exit_code)

    def _summary(self, report: ReconcileReport, *, dry_run: bool, seconds: float) -> None:
        prefix = "DRY RUN, nothing written. " if dry_run else ""
        for result in report.targets:
            if result.locked_by is not None:
                self.stderr.write(f"{result.label} ({result.target}): {result.error}. Exit 2.")
                continue
            state = result.state
            self.stdout.write(
                f"{prefix}{result.label} ({result.target}), run #{result.run_id}: "
                f"{state} after {result.seconds:.1f} s"
            )
            if result.taken_over:
                self.stdout.write(f"  Note: {result.taken_over}.")
            if result.unavailable:
                self.stderr.write(
                    f"  {result.label} is unreachable or misconfigured (exit 3): {result.error}"
                )
            elif result.error:
                self.stderr.write(f"  {result.error}")
            width = max([len("type"), *(len(t) for t in result.counts)]) + 2
            header = "type".ljust(width) + "".join(a.rjust(11) for a in ACTIONS)
            self.stdout.write(header)
            for object_type, row in result.counts.items():
                self.stdout.write(
                    object_type.ljust(width) + "".join(str(row[a]).rjust(11) for a in ACTIONS)
                )
            self.stdout.write(
                "all".ljust(width) + "".join(str(result.total(a)).rjust(11) for a in ACTIONS)
            )
            if result.drained:
                self.stdout.write(f"  {result.drained} changes from the outbox written first.")
            if result.orphans_kept:
                self.stdout.write(f"  {result.orphans_kept} orphans left in place (--no-delete).")
        self.stdout.write(f"Exit code {report.exit_code} after {seconds:.1f} s.")
