"""Load the demo data set (idempotent: a second run creates nothing).

Exit codes: 0 done; 1 refused (production without --force).
"""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.models import Project
from core.services.demo import DEMO_USERNAME, TEAM, demo_seed


class Command(BaseCommand):
    help = "Create the demo organisations, projects, items, comments and attachments."

    def add_arguments(self, parser):
        parser.add_argument(
            "--items", type=int, default=200, help="How many demo items in all (default 200)."
        )
        parser.add_argument(
            "--password",
            default=None,
            help="Password for the 'demo' user (default: AGIRA_DEMO_PASSWORD or 'agira-demo').",
        )
        parser.add_argument(
            "--force", action="store_true", help="Allow seeding when AGIRA_ENV=production."
        )
        parser.add_argument(
            "--no-index",
            action="store_true",
            help="Do not queue the demo objects for the index (for large benchmark sets).",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing if the database already has projects (used by `make run`).",
        )

    def handle(
        self,
        *args,
        items: int,
        password: str | None,
        force: bool,
        if_empty: bool,
        no_index: bool,
        **options,
    ):
        if items < 0:
            raise CommandError("--items must be 0 or more.")
        if settings.PRODUCTION and not force:
            raise CommandError("Refusing to load demo data in production; pass --force to do so.")
        if if_empty and Project.objects.exists():
            self.stdout.write(
                "The database already has projects; demo data not loaded again. "
                f"Log in as '{DEMO_USERNAME}' (password '{settings.AGIRA_DEMO_PASSWORD}' "
                "unless you set another; `manage.py seed_demo` resets it)."
            )
            return
        password = password or settings.AGIRA_DEMO_PASSWORD
        verbosity = options["verbosity"]

        def log(line: str) -> None:
            if verbosity >= 2:
                self.stdout.write(line)

        started = time.monotonic()
        report = demo_seed(items=items, password=password, log=log, index=not no_index)
        elapsed = time.monotonic() - started
        created = ", ".join(f"{count} {name}" for name, count in report.created.items() if count)
        self.stdout.write(
            self.style.SUCCESS(f"Demo data ready in {elapsed:.1f}s")
            + (f": created {created}." if created else ": nothing to create.")
        )
        if report.queued:
            self.stdout.write(f"Queued {report.queued} objects for the index.")
        self.stdout.write(f"Log in as '{DEMO_USERNAME}' with password '{report.password}'.")
        self.stdout.write(
            f"The team ({', '.join(TEAM)}) signs in with the same password, each with other "
            "roles in the two organisations (see an organisation's page)."
        )
