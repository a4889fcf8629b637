"""Load the demo data set (idempotent: a second run creates nothing).

Passwords: the demo users this run creates get AGIRA_DEMO_PASSWORD (or
--password); an existing user's password is left alone, so a second run signs
nobody out. An explicit --password is also set on the existing demo users whose
password differs (signing them out). The output names a password only for the
users who have it.

Exit codes: 0 done; 1 refused (production without --force, an empty --password).
"""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.models import Project
from core.services.demo import DEMO_USERNAME, TEAM, demo_logins, demo_seed


class Command(BaseCommand):
    help = "Create the demo organisations, projects, items, comments and attachments."

    def add_arguments(self, parser):
        parser.add_argument(
            "--items", type=int, default=200, help="How many demo items in all (default 200)."
        )
        parser.add_argument(
            "--password",
            default=None,
            help=(
                "Password for the demo users (demo, alice, bob, carol, dmitri). Without it, "
                "users this run creates get AGIRA_DEMO_PASSWORD ('agira-demo' by default) and "
                "existing users keep theirs. Given, it is also set on existing demo users "
                "whose password differs, which signs them out."
            ),
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
        if password == "":
            raise CommandError("--password must not be empty.")
        reset_passwords = password is not None
        password = password or settings.AGIRA_DEMO_PASSWORD
        if if_empty and Project.objects.exists():
            self.stdout.write("The database already has projects; demo data not loaded again.")
            # The demo user alone: checking a password costs a hash, on every `make run`.
            self._write_logins(password, demo_logins(password=password, usernames=[DEMO_USERNAME]))
            return
        verbosity = options["verbosity"]

        def log(line: str) -> None:
            if verbosity >= 2:
                self.stdout.write(line)

        started = time.monotonic()
        report = demo_seed(
            items=items,
            password=password,
            reset_passwords=reset_passwords,
            log=log,
            index=not no_index,
        )
        elapsed = time.monotonic() - started
        created = ", ".join(f"{count} {name}" for name, count in report.created.items() if count)
        self.stdout.write(
            self.style.SUCCESS(f"Demo data ready in {elapsed:.1f}s")
            + (f": created {created}." if created else ": nothing to create.")
        )
        if report.queued:
            self.stdout.write(f"Queued {report.queued} objects for the index.")
        self._write_logins(password, report.logins)

    def _write_logins(self, password: str, logins: dict[str, bool]) -> None:
        """How to log in, naming `password` only for the users who have it."""
        if logins.get(DEMO_USERNAME):
            self.stdout.write(f"Log in as '{DEMO_USERNAME}' with password '{password}'.")
        elif DEMO_USERNAME in logins:
            self.stdout.write(
                f"Log in as '{DEMO_USERNAME}' with the password already set (left unchanged: "
                "`manage.py seed_demo --password …` sets a new one)."
            )
        else:
            self.stdout.write(
                f"There is no '{DEMO_USERNAME}' user: `manage.py seed_demo` makes it."
            )
        holders = [name for name in TEAM if logins.get(name)]
        kept = [name for name in TEAM if logins.get(name) is False]
        if holders:
            self.stdout.write(
                f"The team ({', '.join(holders)}) signs in with password '{password}', each "
                "with other roles in the two organisations (see an organisation's page)."
            )
        if kept:
            self.stdout.write(
                f"{', '.join(kept)} keep the passwords already set."
                if len(kept) > 1
                else f"{kept[0]} keeps the password already set."
            )
