"""The demo data set: two organisations, their projects, and as many items as
asked for, with comments, attachments, nodes, releases, changes and GitHub links.

Everything is generated from a fixed seed, so two runs produce the same data,
and the generator only adds what is missing: the organisations and projects are
looked up by name, and items are numbered within the demo projects, so a second
run with the same `items` creates nothing.

Rows are written with `bulk_create` in batches: 100,000 items take minutes.
"""

import datetime as dt
import hashlib
import logging
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.db import transaction
from django.utils import timezone

from core.models import (
    Attachment,
    Change,
    ChangeRisk,
    ChangeStatus,
    ExternalIssueMapping,
    ExternalKind,
    Item,
    ItemComment,
    ItemStatus,
    ItemType,
    Membership,
    Node,
    NodeType,
    Organisation,
    Project,
    ProjectStatus,
    Release,
    ReleaseStatus,
    Role,
)

logger = logging.getLogger("agira.demo")

DEMO_USERNAME = "demo"
TEAM = ["alice", "bob", "carol", "dmitri"]
# Who may do what in the demo (core/policy.py): `demo` is a superuser and owns
# both organisations; the team signs in with the same password to try roles.
DEMO_ROLES = {
    "Northwind Labs": {
        "demo": Role.OWNER,
        "alice": Role.OWNER,
        "bob": Role.MAINTAINER,
        "carol": Role.MEMBER,  # belongs to this organisation only
        "dmitri": Role.VIEWER,
    },
    "Contoso Consulting": {
        "demo": Role.OWNER,
        "alice": Role.MAINTAINER,
        "bob": Role.OWNER,
        "dmitri": Role.VIEWER,
    },
}
BATCH = 2000

ORGANISATIONS = {
    "Northwind Labs": {
        "description": "Product engineering for the Northwind shop and its apps.",
        "projects": [
            (
                "Webshop",
                ProjectStatus.ACTIVE,
                "northwind/webshop",
                "The customer-facing shop: catalogue, basket, checkout.",
            ),
            (
                "Mobile App",
                ProjectStatus.ACTIVE,
                "northwind/mobile",
                "iOS and Android apps sharing one API.",
            ),
            (
                "Data Platform",
                ProjectStatus.PLANNED,
                "northwind/data-platform",
                "Event pipeline and reporting warehouse.",
            ),
        ],
    },
    "Contoso Consulting": {
        "description": "Client projects run by the Contoso delivery team.",
        "projects": [
            (
                "Customer Portal",
                ProjectStatus.ACTIVE,
                "contoso/portal",
                "Self-service portal for Contoso's customers.",
            ),
            (
                "Billing Migration",
                ProjectStatus.ON_HOLD,
                "contoso/billing",
                "Moving invoicing from the legacy ERP to the new billing service.",
            ),
        ],
    },
}

SUBJECTS = [
    "checkout",
    "login page",
    "search results",
    "invoice export",
    "user settings",
    "password reset",
    "order history",
    "product images",
    "API rate limits",
    "CSV import",
    "notification emails",
    "dashboard widgets",
    "payment retries",
    "session timeout",
    "audit log",
    "shopping basket",
    "item inbox",
    "release notes page",
    "webhook delivery",
    "PDF rendering",
    "dark mode",
    "address validation",
    "two-factor login",
    "sitemap",
]
BUG_TITLES = [
    "{s} fails with a 500 when the input is empty",
    "{s} shows stale data after saving",
    "Timezone offset wrong in {s}",
    "{s} is slow for accounts with many records",
    "Unicode names break {s}",
    "{s} loses changes on double submit",
]
FEATURE_TITLES = [
    "Add filters to {s}",
    "Allow bulk editing in {s}",
    "Show progress in {s}",
    "Keyboard shortcuts for {s}",
    "Export {s} as CSV",
    "Add CRUD operations to {s}",
]
TASK_TITLES = [
    "Write tests for {s}",
    "Refactor {s} service layer",
    "Document {s} for the support team",
    "Upgrade dependencies used by {s}",
    "Add monitoring for {s}",
]
PARAGRAPHS = [
    "Steps to reproduce:\n1. Log in as a regular user.\n2. Open the {s}.\n3. Save twice quickly.",
    "Expected: the change is saved once and the page shows it.\nActual: an error page.",
    "## ListView\n1. Change the layout from a table to cards.\n2. Add a filter bar by status.",
    "## DetailView\n1. Add all CRUD operations.\n2. Remember the active tab in local storage.",
    "Customers reported this through support; see the attached log for a trace.",
    "Acceptance: works on mobile and desktop, covered by a test, documented in the changelog.",
    "This blocks the next release; the workaround is to reload the page.",
    "Related to the {s} work last sprint. Keep the API backwards compatible.",
]
COMMENTS = [
    "I can reproduce this on staging.",
    "Looks like a missing index; I'll take a look.",
    "Fixed in the branch, waiting for review.",
    "Can we get a screenshot of the error?",
    "Moved to the next sprint, not critical.",
    "Tested on Firefox and Chrome: works now.",
    "The customer confirmed the fix.",
    "Needs a migration; let's schedule it with the release.",
]
NODE_TREE = [
    ("Frontend", NodeType.SYSTEM, None),
    ("Backend", NodeType.SYSTEM, None),
    ("Web UI", NodeType.COMPONENT, "Frontend"),
    ("Design system", NodeType.MODULE, "Frontend"),
    ("REST API", NodeType.INTERFACE, "Backend"),
    ("Order service", NodeType.SERVICE, "Backend"),
    ("Billing service", NodeType.SERVICE, "Backend"),
    ("PostgreSQL", NodeType.DATABASE, "Backend"),
]
TEXT_ATTACHMENTS = [
    ("notes.md", "text/markdown"),
    ("server.log", "text/plain"),
    ("config.json", "application/json"),
    ("report.csv", "text/csv"),
    ("patch.py", "text/x-python"),
]
BINARY_ATTACHMENTS = [("screenshot.png", "image/png"), ("dump.bin", "application/octet-stream")]
STATUS_WEIGHTS = [
    (ItemStatus.INBOX, 15),
    (ItemStatus.BACKLOG, 30),
    (ItemStatus.WORKING, 15),
    (ItemStatus.TESTING, 10),
    (ItemStatus.READY_FOR_RELEASE, 5),
    (ItemStatus.CLOSED, 25),
]


@dataclass
class DemoReport:
    created: dict[str, int] = field(default_factory=dict)
    password: str = ""
    # Per demo user: whether `password` is that user's password after the run
    # (False: an existing user kept a password of its own).
    logins: dict[str, bool] = field(default_factory=dict)
    queued: int = 0

    def add(self, name: str, count: int) -> None:
        self.created[name] = self.created.get(name, 0) + count


def _png(rng: random.Random, width: int = 16, height: int = 16) -> bytes:
    """A small, valid PNG: binary content that is really an image."""
    raw = b"".join(
        b"\x00" + bytes(rng.randrange(256) for _ in range(width * 3)) for _ in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _text_attachment(name: str, rng: random.Random, item_title: str) -> bytes:
    if name.endswith(".json"):
        feature = item_title.replace('"', "'")
        enabled = rng.choice(["true", "false"])
        return (
            f'{{"feature": "{feature}", "enabled": {enabled}, '
            f'"retries": {rng.randrange(5)}, "note": "Grüße aus Köln"}}\n'
        ).encode()
    if name.endswith(".csv"):
        rows = "\n".join(
            f"{i},{rng.randrange(1000)},{rng.choice(['ok', 'fail'])}" for i in range(20)
        )
        return f"row,value,result\n{rows}\n".encode()
    if name.endswith(".log"):
        lines = [
            f"2026-11-{rng.randrange(1, 28):02d}T12:{i:02d}:00Z "
            f"{rng.choice(['INFO', 'WARN', 'ERROR'])} request {rng.randrange(10**6)} "
            f"{rng.choice(['handled', 'timed out', 'retried'])}"
            for i in range(30)
        ]
        return ("\n".join(lines) + "\n").encode()
    if name.endswith(".py"):
        return (
            b"def retry(call, attempts=3):\n"
            b"    for attempt in range(attempts):\n"
            b"        try:\n            return call()\n"
            b"        except TimeoutError:\n            continue\n"
            b"    raise RuntimeError('gave up')\n"
        )
    return f"# Notes on {item_title}\n\n- Checked on staging\n- Needs review\n".encode()


def has_password(user, password: str) -> bool:
    """Whether `password` is the user's password. Unlike User.check_password,
    never re-hashes and saves it (which would sign the user out everywhere)."""
    return check_password(password, user.password)


def demo_logins(*, password: str, usernames: list[str]) -> dict[str, bool]:
    """For each of these users that exists, whether `password` is its password."""
    users = get_user_model().objects.filter(username__in=usernames)
    return {user.username: has_password(user, password) for user in users}


class DemoSeeder:
    def __init__(
        self, *, items: int, password: str, reset_passwords: bool = False, log: Callable = print
    ):
        self.target_items = items
        self.password = password
        self.reset_passwords = reset_passwords
        self.log = log
        self.report = DemoReport(password=password)
        self.media_root = Path(settings.MEDIA_ROOT)

    def run(self) -> DemoReport:
        with transaction.atomic():
            users = self._users()
            projects = self._organisations_and_projects()
            for project, _repository in projects:
                self._planning(project)
        self._items(projects, users)
        return self.report

    # -- fixed parts -------------------------------------------------------
    def _users(self) -> list:
        user_model = get_user_model()
        demo, created = user_model.objects.get_or_create(
            username=DEMO_USERNAME,
            defaults={
                "email": "demo@example.com",
                "first_name": "Demo",
                "is_staff": True,
                "is_superuser": True,
            },
        )
        demo.is_staff = demo.is_superuser = demo.is_active = True
        demo.save(update_fields=["is_staff", "is_superuser", "is_active"])
        self._password(demo, created)
        self.report.add("users", int(created))
        team = [demo]
        for name in TEAM:
            user, created = user_model.objects.get_or_create(
                username=name,
                defaults={"email": f"{name}@example.com", "first_name": name.title()},
            )
            self._password(user, created)
            self.report.add("users", int(created))
            team.append(user)
        return team

    def _password(self, user, created: bool) -> None:
        """A new user gets the demo password; an existing one keeps its own
        unless the run was asked to set it (`reset_passwords`). Setting a
        password signs the user out of every session, so it is only done where
        the password differs."""
        if not created and has_password(user, self.password):
            self.report.logins[user.username] = True
            return
        if created or self.reset_passwords:
            user.set_password(self.password)
            user.save(update_fields=["password"])
        self.report.logins[user.username] = created or self.reset_passwords

    def _organisations_and_projects(self) -> list[tuple[Project, str]]:
        projects = []
        for org_name, spec in ORGANISATIONS.items():
            organisation, created = Organisation.objects.get_or_create(
                name=org_name, defaults={"description": spec["description"]}
            )
            self.report.add("organisations", int(created))
            for name, status, repository, description in spec["projects"]:
                project, created = Project.objects.get_or_create(
                    organisation=organisation,
                    name=name,
                    defaults={"status": status, "description": description},
                )
                self.report.add("projects", int(created))
                projects.append((project, repository))
            self._memberships(organisation, DEMO_ROLES.get(org_name, {}))
        return projects

    def _memberships(self, organisation: Organisation, roles: dict[str, str]) -> None:
        users = get_user_model().objects.filter(username__in=roles)
        for user in users:
            _membership, created = Membership.objects.get_or_create(
                user=user, organisation=organisation, defaults={"role": roles[user.username]}
            )
            self.report.add("memberships", int(created))

    def _planning(self, project: Project) -> None:
        existing = {node.name: node for node in project.nodes.all()}
        for name, node_type, parent_name in NODE_TREE:
            if name in existing:
                continue
            node = Node.objects.create(
                project=project,
                name=name,
                type=node_type,
                parent=existing.get(parent_name),
                description=f"{name} of {project.name}.",
            )
            existing[name] = node
            self.report.add("nodes", 1)

        today = dt.date(2026, 11, 1)
        for index, (version, status) in enumerate(
            [
                ("1.0.0", ReleaseStatus.RELEASED),
                ("1.1.0", ReleaseStatus.RELEASED),
                ("1.2.0", ReleaseStatus.IN_PROGRESS),
                ("2.0.0", ReleaseStatus.PLANNED),
            ]
        ):
            planned = today + dt.timedelta(days=30 * (index - 2))
            _, created = Release.objects.get_or_create(
                project=project,
                version=version,
                defaults={
                    "status": status,
                    "planned_date": planned,
                    "released_date": planned if status == ReleaseStatus.RELEASED else None,
                    "notes": f"{project.name} {version}: fixes and improvements.",
                },
            )
            self.report.add("releases", int(created))

        for title, status, risk in [
            ("Rotate database credentials", ChangeStatus.DONE, ChangeRisk.MEDIUM),
            ("Enable HTTP/2 on the load balancer", ChangeStatus.PLANNED, ChangeRisk.LOW),
            ("Migrate sessions to Redis", ChangeStatus.IN_PROGRESS, ChangeRisk.HIGH),
        ]:
            _, created = Change.objects.get_or_create(
                project=project,
                title=title,
                defaults={
                    "status": status,
                    "risk": risk,
                    "description": f"{title} for {project.name}. Rollback plan in the runbook.",
                },
            )
            self.report.add("changes", int(created))

    # -- items and what hangs off them ---------------------------------------
    def _items(self, projects: list[tuple[Project, str]], users: list) -> None:
        project_ids = [project.pk for project, _ in projects]
        existing = Item.objects.filter(project_id__in=project_ids).count()
        missing = self.target_items - existing
        if missing <= 0:
            return
        # Seeded by where this run starts, so the same call gives the same data.
        rng = random.Random(f"items-{existing}")
        statuses = [status for status, weight in STATUS_WEIGHTS for _ in range(weight)]
        number = existing
        while number < self.target_items:
            batch_size = min(BATCH, self.target_items - number)
            batch = []
            for _ in range(batch_size):
                number += 1
                project, _ = projects[number % len(projects)]
                kind = rng.choice(ItemType.values)
                subject = rng.choice(SUBJECTS)
                template = rng.choice(
                    {"bug": BUG_TITLES, "feature": FEATURE_TITLES, "task": TASK_TITLES}[kind]
                )
                title = template.format(s=subject)
                title = title[0].upper() + title[1:]
                description = "\n\n".join(
                    p.format(s=subject) for p in rng.sample(PARAGRAPHS, rng.randint(1, 3))
                )
                batch.append(
                    Item(
                        project=project,
                        title=title,
                        description=description,
                        type=kind,
                        status=rng.choice(statuses),
                        assignee=rng.choice([None, *users]),
                    )
                )
            with transaction.atomic():
                created = Item.objects.bulk_create(batch)
                self._item_children(created, projects, users, rng)
            self.report.add("items", len(created))
            self.log(f"  items: {number}/{self.target_items}")

    def _item_children(self, items: list[Item], projects, users: list, rng: random.Random) -> None:
        repositories = {project.pk: repository for project, repository in projects}
        comments, attachments, mappings = [], [], []
        for item in items:
            for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
                comments.append(
                    ItemComment(item=item, author=rng.choice(users), body=rng.choice(COMMENTS))
                )
            if rng.random() < 0.15:
                attachments.append(self._attachment(item, rng, users))
            if rng.random() < 0.05:
                closed = item.status in (ItemStatus.TESTING, ItemStatus.CLOSED)
                repository = repositories[item.project_id]
                number = item.pk % 5000 + 1
                mappings.append(
                    ExternalIssueMapping(
                        item=item,
                        repository=repository,
                        number=number,
                        kind=ExternalKind.ISSUE,
                        url=f"https://github.com/{repository}/issues/{number}",
                        state="closed" if closed else "open",
                        state_reason="completed" if closed else "",
                        title=item.title,
                    )
                )
        ItemComment.objects.bulk_create(comments, batch_size=BATCH)
        Attachment.objects.bulk_create(attachments, batch_size=BATCH)
        ExternalIssueMapping.objects.bulk_create(mappings, batch_size=BATCH)
        self.report.add("comments", len(comments))
        self.report.add("attachments", len(attachments))
        self.report.add("github links", len(mappings))

    def _attachment(self, item: Item, rng: random.Random, users: list) -> Attachment:
        if rng.random() < 0.7:
            name, content_type = rng.choice(TEXT_ATTACHMENTS)
            content = _text_attachment(name, rng, item.title)
        else:
            name, content_type = rng.choice(BINARY_ATTACHMENTS)
            content = _png(rng) if name.endswith(".png") else rng.randbytes(512)
        # Written straight to storage under a name we choose: going through
        # FileField.save for every file would cost a storage round trip each.
        relative = f"attachments/{item.pk}/demo-{hashlib.sha1(content).hexdigest()[:16]}"
        path = self.media_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return Attachment(
            item=item,
            file=relative,
            original_filename=name,
            content_type=content_type,
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            uploaded_by=rng.choice(users),
        )


def demo_seed(
    *,
    items: int,
    password: str,
    reset_passwords: bool = False,
    log: Callable = print,
    index: bool = True,
) -> DemoReport:
    """Create the demo data set, adding only what is missing.

    `password` is given to the demo users this run creates; existing ones keep
    theirs unless `reset_passwords`. Rows are bulk-created (no signals); with
    `index` every new demo object is then put in the sync outbox at once, so the
    index receives it too.
    """
    from core.services.index import mark_for_sync, sync_paused

    started = timezone.now()
    with sync_paused():
        since = timezone.now()
        report = DemoSeeder(
            items=items, password=password, reset_passwords=reset_passwords, log=log
        ).run()
        if index:
            report.queued = sum(
                mark_for_sync(model.objects.filter(created_at__gte=since))
                for model in (
                    Project,
                    Item,
                    ItemComment,
                    Attachment,
                    Node,
                    Release,
                    Change,
                    ExternalIssueMapping,
                )
            )
    logger.info("Demo data seeded in %s: %s", timezone.now() - started, report.created)
    return report
