"""Benchmark of the embedded index (SQLite: FTS5 + sqlite-vec) with embeddings.

    .venv/bin/python bench/bench_index.py [--objects 100000] [--quick] [--keep]

Measures every figure of the issue's "Figures to meet" list and prints each with its
goal and PASS/MISS (or "info" where the issue asks for a figure without a goal). It
asserts nothing about time. Everything runs in fresh temporary directories (SQLite
database, media, the index file AGIRA_EMBEDDED_PATH, the reconcile mirror via
AGIRA_VAR_DIR); the project's `var/` is never touched; only loopback is used.

The code measured is a copy of the working tree taken at the start (without .venv, var/,
.git), so that edits made meanwhile do not mix versions within a run; the start prints
which (HEAD and a hash of core/, agira/, templates/), the end says if the tree changed.

Every command (`migrate`, `seed_demo`, `sync_weaviate`) and every helper (the `--child`
roles of this script, which set up Django) runs as its own process under a small launcher
that reports its peak RSS (`wait4`'s ru_maxrss); wall times are the launcher's, i.e. end to
end, with interpreter and Django start-up. The web figures are measured over HTTP on
127.0.0.1 against gunicorn (`agira.wsgi`, one sync worker, DEBUG=False, as the Dockerfile
runs it), logged in as the demo user with a session made by a helper.

Two data sets:

* small (~2,000 objects, `seed_demo --items 837`): the local model's own speed and the
  cold drain. **Model speed**: `LocalEmbedder` on 2 threads at batch 32 and 64, on item
  titles (short) and on texts that fill the model's 256 tokens (demo descriptions joined).
  **Cold**: in one process (model loaded before any timing) the distinct embedding texts
  of every object (`embedding_text(normalise(document_for(obj)))`) are embedded by
  `LocalEmbedder.embed` alone (twice, before and after the drain; the mean is the model
  time); then, with the EmbeddingCache emptied and a new empty index file each time,
  every object is marked for sync and `drain()` is timed, and `sync_weaviate --target
  embedded` (cold reconcile) is timed. Overhead = (drain time - model time) / model time.

* large (`--objects`, default 100,000; `--quick`: 10,000): `seed_demo --no-index` with
  sync switched off, rows dated a day back (demo rows are seconds old; the reconcile
  re-reads rows changed less than AGIRA_RECONCILE_MARGIN_SECONDS before its last run).
  **Embedding 100,000 texts with the real model on 2 cores would take hours, so the
  EmbeddingCache is prefilled**: for every object, key `cache.cache_key(embedder.info,
  text)` of its embedding text (exactly as the sync computes it), value a deterministic
  random unit vector seeded by the key. What these figures measure is the cached path
  (cache look-ups, vector writes, vector search over 100k stored vectors); the model's own
  speed is measured apart on real text (above). Query vectors of semantic searches come
  from the real model: no semantic query text is used twice in a process, so the web
  process's cache of recent query vectors never answers for the model.
  Then, each `sync_weaviate` its own process:

  1. `--full --force --target embedded` with AGIRA_EMBEDDER_PROVIDER=none into a fresh
     index file (no vectors), and the same with the local embedder (cache warm) into
     another fresh index file: ratio with / without vectors (the EmbeddingCache row count
     before and after proves no text was embedded);
  2. `--full --force` again into the populated file: the re-sync, objects / wall seconds;
  3. a plain run (settles); 1 % of the objects (item titles) changed by SQL with
     `updated_at` set (as `QuerySet.update(title=..., updated_at=now())` would), their new
     embedding texts prefilled as above; the incremental run (must update exactly those);
     incremental / full (the re-sync);
  4. a run with nothing changed. Writes: the index file's `objects` table (count,
     max(version), sum(version)) and its write counter (`meta.version`, +1 per batch
     written) before and after, the sync records changed and cache rows added during the
     run. Reads: the command prints no count of documents read, so the same run is made
     again in a helper process (`call_command`) that then prints the embedded target's own
     counters (`EmbeddedTarget.stats`: "documents read", "upserted points"), when the code
     keeps them; otherwise the figure says it is inferred (the run reads a document only
     when the index's (id, version) differs from its mirror's, reconcile.py
     `_scan_versions`, or to read back what it wrote: the bench compares the index file's
     (uuid, version) pairs with the mirror file's before the run) and names the hook needed.

  Web, against the large index (with vectors): the button endpoint
  (`GET /weaviate/status/<type>/<id>/`, random objects of every type), the item page with
  its buttons (a random item's page, then every `hx-get` of `/weaviate/status/` in it, one
  after the other as a single connection would; the figure per view is the page time plus
  the sum of its button times), the modal (`GET /weaviate/object/<type>/<id>/`, htmx
  fragment), and `/search/` keyword and semantic, each with a type filter and with a
  project filter: idle, then while `sync_weaviate --full --force --target embedded` runs in
  another process (searches run back to back until it exits; errors counted: non-200, the
  page's "Search is unavailable" or form errors, a result of another type than the
  filter). For reading them, the same searches at the service level (`search_objects` in
  one process, no HTTP; semantic split into the query's embedding and the KNN) are printed
  too. Memory: a fresh gunicorn whose worker only sets up Django and serves 200 searches
  (half keyword, half semantic): its VmRSS and peak VmHWM; and the index file's size.

The cold figure compares separate runs of the model and of the drain, so load from other
processes between them moves it; the bench also prints, for the drain and the reconcile,
the time they spent inside `embed()` (the embedder instance's method timed in the same
interval) and flags the between-run figure when the model-alone runs disagree.

The machine's load is printed: figures from a machine shared with other work vary; compare
ratios within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
# Where the commands, helpers and the server run: a copy of the working tree taken at the
# start (main() sets it), so that edits made to the project while the bench runs do not
# mix code versions within one run.
CODE_ROOT = REPO_ROOT
SNAPSHOT_IGNORE = (".venv", "var", ".git", "__pycache__", ".pytest_cache", ".ruff_cache")

OBJECTS_PER_ITEM = 2.39  # what seed_demo makes per item (comments, attachments, links)
TABLES = (
    "core_item",
    "core_itemcomment",
    "core_attachment",
    "core_project",
    "core_change",
    "core_node",
    "core_release",
    "core_externalissuemapping",
)
TYPE_TABLES = {
    "item": ("core_item", ""),
    "comment": ("core_itemcomment", ""),
    "attachment": ("core_attachment", ""),
    "project": ("core_project", ""),
    "change": ("core_change", ""),
    "node": ("core_node", ""),
    "release": ("core_release", ""),
    "github_issue": ("core_externalissuemapping", " WHERE kind = 'issue'"),
    "github_pr": ("core_externalissuemapping", " WHERE kind = 'pr'"),
}

GOAL_BUTTON_MS = 30.0
GOAL_ITEM_PAGE_MS = 150.0
GOAL_MODAL_MS = 100.0
GOAL_SEARCH_MS = 150.0
GOAL_RELATED_MS = 100.0
GOAL_DUPLICATES_MS = 150.0
GOAL_RESYNC_RATE = 2000.0
GOAL_COLD_OVERHEAD = 0.30
GOAL_VECTOR_RATIO = 1.2
GOAL_INCREMENTAL = 0.10
RESULT_MARK = "BENCH_RESULT="
SEARCH_COMBOS = (
    ("keyword", "type"),
    ("keyword", "project"),
    ("semantic", "type"),
    ("semantic", "project"),
    ("hybrid", "type"),
    ("hybrid", "project"),
)

# The command runs under this small launcher, which reports the peak RSS of its child
# (wait4 on a child forked from this process would count this process in its peak).
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_pid, status, usage = os.wait4(proc.pid, 0)
print(f"PEAK_RSS_KB={usage.ru_maxrss}", flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


# -- small helpers ------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def verdict(ok: bool | None) -> str:
    return "info" if ok is None else ("PASS" if ok else "MISS")


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def say(text: str = "") -> None:
    print(text, flush=True)


def file_size(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            total += Path(f"{path}{suffix}").stat().st_size
    return total


class StepFailed(Exception):
    """A command or helper exited with an error; `output` holds what it printed."""

    def __init__(self, what: str, output: str, code: int | None = None):
        super().__init__(f"{what} exited {code}")
        self.what, self.output, self.code = what, output, code


@dataclass
class Run:
    seconds: float
    peak_mb: float
    output: str
    code: int = 0
    result: dict = field(default_factory=dict)

    @property
    def own_seconds(self) -> float:
        """The run's own time as sync_weaviate reports it ("Exit code N after X s.")."""
        tail = self.output.rsplit("Exit code ", 1)[-1]
        try:
            return float(tail.split(" after ", 1)[1].split(" s", 1)[0])
        except (IndexError, ValueError):
            return float("nan")

    def totals(self) -> dict[str, int]:
        """The 'all' row of sync_weaviate's table: created updated unchanged deleted failed."""
        lines = [line for line in self.output.splitlines() if line.startswith("all ")]
        if not lines:
            return {}
        actions = ("created", "updated", "unchanged", "deleted", "failed")
        return dict(zip(actions, map(int, lines[-1].split()[1:]), strict=True))

    def table(self) -> str:
        rows = self.totals()
        return " ".join(f"{k} {v}" for k, v in rows.items()) if rows else "(no table)"


def launch(env: dict, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, sys.executable, *args],
        cwd=CODE_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen, started: float, what: str, check: bool = True) -> Run:
    output, _ = proc.communicate()
    seconds = time.perf_counter() - started
    peak_kb = 0
    if "PEAK_RSS_KB=" in output:
        peak_kb = int(output.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])
    result = {}
    if RESULT_MARK in output:
        result = json.loads(output.rsplit(RESULT_MARK, 1)[1].splitlines()[0])
    run = Run(seconds, peak_kb / 1024, output, proc.returncode, result)
    if check and proc.returncode != 0:
        raise StepFailed(what, output, proc.returncode)
    return run


def run_measured(env: dict, *args: str, check: bool = True) -> Run:
    """Run `manage.py ...` or a `--child` role of this script; wall time and peak RSS."""
    started = time.perf_counter()
    return finish(launch(env, list(args)), started, " ".join(args[:3]), check=check)


def manage(env: dict, *args: str, check: bool = True) -> Run:
    return run_measured(env, "manage.py", *args, check=check)


def child(env: dict, role: str, *args: str) -> Run:
    return run_measured(env, str(CODE_ROOT / "bench" / "bench_index.py"), "--child", role, *args)


def make_env(folder: Path, index_path: Path, **extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGIRA_", "DJANGO_"))
        and k not in ("DATABASE_URL", "DEBUG", "SECRET_KEY", "MEDIA_ROOT", "ALLOWED_HOSTS")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{folder / 'agira.sqlite3'}",
        AGIRA_VAR_DIR=str(folder),
        AGIRA_EMBEDDED_PATH=str(index_path),
        AGIRA_EMBEDDED_ENABLED="true",
        AGIRA_WEAVIATE_ENABLED="false",
        AGIRA_QDRANT_ENABLED="false",
        AGIRA_GRAPH_ENABLED="false",  # the indexes alone: the graph is another target
        AGIRA_EMBEDDER_PROVIDER="local",
        # A commit enqueues the drain as a database task (no worker runs it here): the
        # bench drains explicitly, and a save never drains inline behind its back.
        AGIRA_TASKS_BACKEND="django_tasks_db.DatabaseBackend",
        AGIRA_ENV="development",
        DEBUG="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def seed(folder: Path, objects: int) -> tuple[dict, int, int]:
    """A fresh database with about `objects` demo objects, dated a day back."""
    folder.mkdir(parents=True, exist_ok=True)
    env = make_env(folder, folder / "index" / "agira.db")
    items = max(1, round(objects / OBJECTS_PER_ITEM))
    manage(env, "migrate", "-v0")
    # Sync off while seeding: nothing recorded, no model loaded, no index file written.
    manage({**env, "AGIRA_SYNC_ENABLED": "false"}, "seed_demo", "--items", str(items), "--no-index")
    with sqlite3.connect(folder / "agira.sqlite3") as conn:
        count = sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES)  # noqa: S608
        for table in TABLES:
            conn.execute(
                f"UPDATE {table} SET created_at = strftime('%Y-%m-%d %H:%M:%f', created_at,"  # noqa: S608
                " '-1 day'), updated_at = strftime('%Y-%m-%d %H:%M:%f', updated_at, '-1 day')"
            )
    return env, count, items


# -- the index file and the mirror, read from outside ------------------------------------
def mirror_path(folder: Path, index_path: Path) -> Path:
    """Where reconcile.py keeps the mirror of this index file (`_open_mirror`)."""
    key = f"embedded|{index_path.resolve()}"
    return (
        folder / "reconcile" / f"embedded-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sqlite3"
    )


def index_snapshot(index_path: Path) -> dict:
    with contextlib.closing(sqlite3.connect(f"file:{index_path}?mode=ro", uri=True)) as conn:
        count, top, total = conn.execute(
            "SELECT count(*), coalesce(max(version), 0), coalesce(sum(version), 0) FROM objects"
        ).fetchone()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    return {
        "objects": count,
        "max_version": top,
        "sum_version": total,
        "write_counter": int(meta.get("version", 0)),
        "dimension": meta.get("dimension"),
        "model": meta.get("embedding_model"),
    }


def mirror_agreement(index_path: Path, mirror: Path) -> dict | None:
    """How many (uuid, version) pairs of the index the mirror lacks, and the reverse."""
    if not mirror.is_file():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{index_path}?mode=ro", uri=True)) as conn:
        conn.execute("ATTACH DATABASE ? AS m", (f"file:{mirror}?mode=ro",))
        missing = conn.execute(
            "SELECT count(*) FROM objects o LEFT JOIN m.objects x ON x.uuid = o.uuid"
            " WHERE x.version IS NOT o.version"
        ).fetchone()[0]
        extra = conn.execute(
            "SELECT count(*) FROM m.objects x LEFT JOIN objects o ON o.uuid = x.uuid"
            " WHERE o.uuid IS NULL"
        ).fetchone()[0]
        held = conn.execute("SELECT count(*) FROM m.objects").fetchone()[0]
    return {
        "index_pairs_not_in_mirror": missing,
        "mirror_entries_not_in_index": extra,
        "held": held,
    }


def db_scalar(folder: Path, sql: str, params: tuple = ()) -> int:
    with contextlib.closing(sqlite3.connect(folder / "agira.sqlite3")) as conn:
        return conn.execute(sql, params).fetchone()[0]


def db_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# -- the web server ---------------------------------------------------------------------------
def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn agira.wsgi with one sync worker on 127.0.0.1 (the Dockerfile's default)."""

    def __init__(self, env: dict, log: Path):
        self.port = free_port()
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "agira.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--timeout",
                "300",
                "--graceful-timeout",
                "5",
                "--log-level",
                "warning",
            ],
            cwd=CODE_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise StepFailed("gunicorn", log.read_text(), self.proc.returncode)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            if time.monotonic() > deadline:
                raise StepFailed("gunicorn (did not listen within 60 s)", log.read_text())
            time.sleep(0.1)

    def worker_pid(self) -> int | None:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(path.read_text().split()[0])
        return None

    @staticmethod
    def memory(pid: int | None) -> dict[str, float]:
        values: dict[str, float] = {}
        if pid is None:
            return values
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    values[key] = int(rest.split()[0]) / 1024
        return values

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def http_client(server: Server, session_key: str):
    import httpx

    client = httpx.Client(base_url=server.base, timeout=120.0, follow_redirects=False)
    client.cookies.set("sessionid", session_key, domain="127.0.0.1")
    return client


def timed_get(client, url: str, *, htmx: bool = False, params: dict | None = None):
    headers = {"HX-Request": "true"} if htmx else None
    started = time.perf_counter()
    response = client.get(url, headers=headers, params=params)
    return (time.perf_counter() - started) * 1000, response


def latency_line(name: str, values: list[float], goal: float | None = None) -> str:
    if not values:
        return f"  {name}: no measurements"
    text = (
        f"  {name}: n={len(values)} p50 {percentile(values, 50):.1f} ms, p95 "
        f"{percentile(values, 95):.1f} ms, max {max(values):.1f} ms"
    )
    if goal is not None:
        text += f"  [goal p95 <= {goal:g} ms: {verdict(percentile(values, 95) <= goal)}]"
    return text


def search_params(mode: str, filt: str, query: str, object_type: str, project: int) -> dict:
    params = {"q": query, "mode": mode}
    if filt == "type":
        params["type"] = object_type
    else:
        params["project"] = str(project)
    return params


def check_search(response, params: dict) -> str:
    """'' if the page is a proper result page, else what is wrong."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    body = response.text
    if 'id="search-unavailable"' in body:
        found = re.search(r'id="search-unavailable">(.*?)</div>', body, re.S)
        text = re.sub(r"<[^>]+>", "", found.group(1)).strip() if found else "?"
        return f"unavailable: {text[:200]}"
    if 'id="search-errors"' in body:
        return "form error"
    if "type" in params:
        kinds = set(re.findall(r'data-result-type="([^"]+)"', body))
        if kinds - {params["type"]}:
            return f"results of other types {sorted(kinds)}"
    return ""


class Queries:
    """Deterministic search inputs from the demo data."""

    def __init__(self, folder: Path, seed_value: int = 7):
        rng = random.Random(seed_value)
        with contextlib.closing(sqlite3.connect(folder / "agira.sqlite3")) as conn:
            titles = [row[0] for row in conn.execute("SELECT title FROM core_item LIMIT 20000")]
            self.projects = [row[0] for row in conn.execute("SELECT id FROM core_project")]
        words = sorted(
            {w.lower() for t in titles for w in re.findall(r"[A-Za-z]{4,}", t)}
            - {"with", "from", "when", "that", "this", "into"}
        )
        self.rng = rng
        self.seen: set[str] = set()
        self.words = words
        self.titles = sorted(set(titles))
        self.sentences = [
            "checkout fails when the payment provider times out",
            "users cannot log in after resetting their password",
            "export the report as a spreadsheet",
            "slow page load on the dashboard",
            "webhook deliveries are retried too often",
            "add dark mode to the settings page",
            "crash when uploading a large attachment",
            "improve search results ranking",
        ]

    def next(self, mode: str, filt: str) -> dict:
        rng = self.rng
        if mode == "keyword":
            query = " ".join(rng.sample(self.words, rng.choice((1, 2))))
        else:
            # Never the same text twice in a process: the web process keeps the vectors of
            # recent queries, and every semantic search here is to pay for the model.
            query = rng.choice(self.sentences + self.titles[:200])
            while query in self.seen:
                query = f"{query} {rng.choice(self.words)}"
            self.seen.add(query)
        return search_params(
            mode, filt, query, rng.choice(("item", "comment")), rng.choice(self.projects)
        )


def sample_objects(folder: Path, count: int, seed_value: int) -> list[tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(folder / "agira.sqlite3")) as conn:
        everything = [
            (name, row[0])
            for name, (table, where) in TYPE_TABLES.items()
            for row in conn.execute(f"SELECT id FROM {table}{where}")  # noqa: S608
        ]
    rng = random.Random(seed_value)
    return rng.sample(everything, min(count, len(everything)))


# -- child roles (run in their own process, with Django) ---------------------------------
def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agira.settings")
    import django

    django.setup()


def emit(result: dict) -> None:
    print(RESULT_MARK + json.dumps(result), flush=True)


def child_session(_args) -> None:
    """A logged-in session of the demo user (the web figures need a login)."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.get(username="demo")
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    emit({"session": store.session_key})


def child_prefill(_args) -> None:
    """Fill the EmbeddingCache for every object's embedding text, keyed exactly as the
    sync keys it, with deterministic random unit vectors (see the module docstring)."""
    import numpy as np

    from core.models import EmbeddingCache
    from core.services.index.documents import OBJECT_TYPES, embedding_text, normalise
    from core.services.index.embeddings import current_embedder
    from core.services.index.embeddings.cache import cache_key

    started = time.perf_counter()
    embedder = current_embedder()
    info = embedder.info
    keys: dict[str, None] = {}
    objects = 0
    for spec in OBJECT_TYPES.values():
        for obj in spec.queryset().order_by("pk").iterator(chunk_size=2000):
            keys[cache_key(info, embedding_text(normalise(spec.serialize(obj))))] = None
            objects += 1
    distinct = list(keys)
    existing: set[str] = set()
    for start in range(0, len(distinct), 500):
        chunk = distinct[start : start + 500]
        existing.update(EmbeddingCache.objects.filter(key__in=chunk).values_list("key", flat=True))
    missing = [k for k in distinct if k not in existing]
    rows = []
    for key in missing:
        rng = np.random.default_rng(int(key[:16], 16))
        vector = rng.standard_normal(info.dimension).astype(np.float32)
        vector /= np.linalg.norm(vector)
        rows.append(EmbeddingCache(key=key, model=info.key, vector=vector.astype("<f4").tobytes()))
        if len(rows) >= 2000:
            EmbeddingCache.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
            rows = []
    if rows:
        EmbeddingCache.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    emit(
        {
            "objects": objects,
            "distinct_texts": len(distinct),
            "added": len(missing),
            "model": info.key,
            "model_texts": getattr(embedder, "texts", None),
            "seconds": time.perf_counter() - started,
        }
    )


def child_model(args) -> None:
    """The local model's texts/s on 2 threads, batch 32 and 64, short and 256-token texts."""
    from tokenizers import Tokenizer

    from core.models import Item
    from core.services.index.embeddings.local import MAX_TOKENS, TOKENIZER_PATH, LocalEmbedder

    titles = list(Item.objects.order_by("pk").values_list("title", flat=True)[: args.titles])
    descriptions = [
        d for d in Item.objects.order_by("pk").values_list("description", flat=True)[:3000] if d
    ]
    # The model's own tokenizer file, truncating as the model does.
    tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()  # the file pads to a fixed 128; count real tokens
    longs: list[str] = []
    start = 0
    while len(longs) < args.long and descriptions:
        parts: list[str] = []
        # The tokenizer truncates at MAX_TOKENS: reaching it means the text fills the model.
        while len(tokenizer.encode(" ".join(parts)).ids) < MAX_TOKENS:
            parts.append(descriptions[start % len(descriptions)])
            start += 1
        longs.append(" ".join(parts))
    title_tokens = [len(tokenizer.encode(t).ids) for t in titles]
    long_tokens = [len(tokenizer.encode(t).ids) for t in longs]
    result: dict = {
        "titles": len(titles),
        "title_tokens_mean": sum(title_tokens) / max(1, len(title_tokens)),
        "long": len(longs),
        "long_tokens_mean": sum(long_tokens) / max(1, len(long_tokens)),
        "rates": {},
    }
    for batch in (32, 64):
        embedder = LocalEmbedder(threads=2, batch_size=batch)
        embedder.embed(titles[:batch])  # load and warm up
        for name, texts in (("titles", titles), ("256-token texts", longs)):
            began = time.perf_counter()
            embedder.embed(texts)
            result["rates"][f"{name}, batch {batch}"] = len(texts) / (time.perf_counter() - began)
    emit(result)


def child_cold(args) -> None:
    """Model alone vs a cold drain and a cold reconcile of the same objects."""
    import io

    from django.core.management import call_command
    from django.test import override_settings

    from core.models import (
        Attachment,
        Change,
        EmbeddingCache,
        ExternalIssueMapping,
        Item,
        ItemComment,
        Node,
        Project,
        Release,
        SyncOutbox,
        SyncRecord,
    )
    from core.services.index import drain, mark_for_sync, sync_paused
    from core.services.index.documents import (
        OBJECT_TYPES,
        document_for,
        embedding_text,
        normalise,
    )
    from core.services.index.embeddings import current_embedder
    from core.services.index.targets.embedded import embedded_target

    folder = Path(args.folder)
    texts = []
    for spec in OBJECT_TYPES.values():
        for obj in spec.queryset().order_by("pk"):
            texts.append(embedding_text(normalise(document_for(obj))))
    distinct = list(dict.fromkeys(texts))
    embedder = current_embedder()
    embedder.embed(distinct[:64])  # load the model and warm it up: not timed
    memory = {"after loading the model": own_memory()}

    # Time spent inside the model during the drain/reconcile, measured in the same
    # interval (a cross-check that does not depend on the load staying the same between
    # separate runs): the instance's embed, timed. Nothing of the project is changed.
    inside = {"seconds": 0.0}
    real_embed = embedder.embed

    def timed_embed(batch):
        began = time.perf_counter()
        try:
            return real_embed(batch)
        finally:
            inside["seconds"] += time.perf_counter() - began

    def model_alone() -> tuple[float, float]:
        began, cpu = time.perf_counter(), time.process_time()
        real_embed(distinct)
        return time.perf_counter() - began, time.process_time() - cpu

    result: dict = {
        "objects": len(texts),
        "distinct_texts": len(distinct),
        "batch_size": getattr(embedder, "batch_size", "?"),
        "threads": getattr(embedder, "threads", "?"),
        "model": [],
        "load": [],
    }
    result["model"].append(model_alone())
    memory["after the model alone"] = own_memory()
    embedder.embed = timed_embed

    # A cold drain: empty cache, empty index file, every object marked for sync.
    EmbeddingCache.objects.all().delete()
    SyncRecord.objects.all().delete()
    SyncOutbox.objects.all().delete()
    with override_settings(AGIRA_EMBEDDED_PATH=str(folder / "cold-drain.db")):
        with sync_paused():
            for model in (
                Project,
                Item,
                ItemComment,
                Attachment,
                Change,
                Node,
                Release,
                ExternalIssueMapping,
            ):
                mark_for_sync(model.objects.all())
        texts_before = getattr(embedder, "texts", 0)
        inside["seconds"] = 0.0
        result["load"].append(os.getloadavg()[0])
        began, cpu = time.perf_counter(), time.process_time()
        report = drain()
        result["drain"] = (time.perf_counter() - began, time.process_time() - cpu)
        result["drain_inside_model"] = inside["seconds"]
        result["drain_model_texts"] = getattr(embedder, "texts", 0) - texts_before
        written = report.targets.get("embedded")
        result["drain_written"] = written.written if written else None
        result["drain_failed"] = written.failed if written else None
        result["drain_error"] = written.error if written else "no embedded target"
        result["drain_index_objects"] = embedded_target().count()
        info = embedded_target().vector_info()
        result["drain_index_vectors"] = list(info) if info else None
    result["cache_rows_after_drain"] = EmbeddingCache.objects.count()
    memory["after the drain"] = own_memory()

    result["model"].append(model_alone())

    # A cold reconcile: empty cache again, another empty index file.
    EmbeddingCache.objects.all().delete()
    with override_settings(AGIRA_EMBEDDED_PATH=str(folder / "cold-reconcile.db")):
        out = io.StringIO()
        texts_before = getattr(embedder, "texts", 0)
        inside["seconds"] = 0.0
        result["load"].append(os.getloadavg()[0])
        began, cpu = time.perf_counter(), time.process_time()
        call_command("sync_weaviate", "--target", "embedded", stdout=out, stderr=out)
        result["reconcile"] = (time.perf_counter() - began, time.process_time() - cpu)
        result["reconcile_inside_model"] = inside["seconds"]
        result["reconcile_model_texts"] = getattr(embedder, "texts", 0) - texts_before
        result["reconcile_output"] = out.getvalue()
        result["reconcile_index_objects"] = embedded_target().count()
    memory["after the reconcile"] = own_memory()

    result["model"].append(model_alone())
    result["memory"] = memory
    emit(result)


def own_memory() -> str:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            values[key] = int(rest.split()[0]) / 1024
    return (
        f"VmRSS {values.get('VmRSS', 0):.0f} MB (anonymous {values.get('RssAnon', 0):.0f}, "
        f"file-backed {values.get('RssFile', 0):.0f}), peak {values.get('VmHWM', 0):.0f} MB"
    )


def child_search(args) -> None:
    """Search at the service level (no HTTP, no page): `search_objects` per combination,
    and for semantic searches the query's embedding and the index's KNN apart."""
    from core.services.index.embeddings import current_embedder
    from core.services.index.service import primary_target, search_objects

    queries = Queries(Path(args.folder), seed_value=5)

    def call(params: dict) -> None:
        search_objects(
            query=params["q"],
            object_type=params.get("type", ""),
            project_id=params.get("project", ""),
            mode=params["mode"],
        )

    for combo in SEARCH_COMBOS:  # warm-up: the model loads on the first semantic query
        call(queries.next(*combo))
    target = primary_target()
    embedder = current_embedder()
    timings: dict[str, list[float]] = {}
    for _ in range(args.searches):
        for combo in SEARCH_COMBOS:
            params = queries.next(*combo)
            began = time.perf_counter()
            call(params)
            timings.setdefault(f"{combo[0]}, {combo[1]} filter", []).append(
                (time.perf_counter() - began) * 1000
            )
            if combo[0] == "semantic":
                began = time.perf_counter()
                vector = embedder.embed([params["q"]])[0]  # the model, not a kept vector
                middle = time.perf_counter()
                filters = {"type": params.get("type", ""), "project_id": params.get("project", "")}
                target.search(
                    params["q"],
                    filters={k: v for k, v in filters.items() if v},
                    limit=20,
                    offset=0,
                    vector=vector,
                )
                done = time.perf_counter()
                timings.setdefault("semantic: the query's embedding", []).append(
                    (middle - began) * 1000
                )
                timings.setdefault(f"semantic: KNN alone, {combo[1]} filter", []).append(
                    (done - middle) * 1000
                )
    emit({"timings": timings, "memory": own_memory()})


def child_reconcile(_args) -> None:
    """`sync_weaviate --target embedded` in this process, then the embedded target's own
    counters (the command prints none)."""
    import inspect
    import io

    from django.core.management import call_command

    from core.services.index.targets import embedded
    from core.services.index.targets.embedded import embedded_target

    out = io.StringIO()
    code = 0
    try:
        call_command("sync_weaviate", "--target", "embedded", stdout=out, stderr=out)
    except SystemExit as exc:
        code = exc.code
    lines = [line for line in out.getvalue().splitlines() if line.startswith("all ")]
    target = embedded_target()
    stats = dict(getattr(target, "stats", {}))
    # Proof that the counter is live on the instance the command used: read one document.
    probe = None
    with contextlib.suppress(Exception):
        first = next(iter(target.iter_versions()))[:1]
        before = target.stats["documents read"]
        target.fetch_versioned([raw for raw, _version in first])
        probe = target.stats["documents read"] - before
    emit(
        {
            "code": code,
            "totals": lines[-1] if lines else out.getvalue()[-2000:],
            "stats": stats,
            "counts_reads": "documents read" in inspect.getsource(embedded) and probe == 1,
            "probe": probe,
        }
    )


CHILDREN = {
    "session": child_session,
    "prefill": child_prefill,
    "model": child_model,
    "cold": child_cold,
    "search": child_search,
    "reconcile": child_reconcile,
}


# -- the phases ---------------------------------------------------------------------------
@dataclass
class Figures:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, name: str, measured: str, goal: str, ok: bool | None) -> None:
        self.rows.append((name, measured, goal, verdict(ok)))

    def error(self, name: str, goal: str, exc: BaseException) -> None:
        self.rows.append((name, f"ERROR: {exc}", goal, "MISS"))
        text = exc.output if isinstance(exc, StepFailed) else repr(exc)
        self.problems.append(f"{name}: {exc}\n{text[-6000:]}")


def phase_small(args, root: Path, figures: Figures) -> None:
    folder = root / "small"
    began = time.perf_counter()
    env, count, items = seed(folder, args.cold_objects)
    say(
        f"\nSmall data set: {count} objects ({items} items) seeded in "
        f"{time.perf_counter() - began:.1f} s"
    )

    say("\nThe local model alone (LocalEmbedder, 2 threads)")
    try:
        run = child(env, "model", "--titles", str(args.titles), "--long", str(args.long))
        r = run.result
        say(
            f"  {r['titles']} titles (mean {r['title_tokens_mean']:.1f} tokens), {r['long']} "
            f"long texts (mean {r['long_tokens_mean']:.1f} tokens, capped at 256)"
        )
        for name, rate in r["rates"].items():
            say(f"  {name:<28} {rate:8.1f} texts/s")
            figures.add(f"model texts/s, {name}", f"{rate:.1f} texts/s", "report", None)
        args.model_rates = r["rates"]
    except StepFailed as exc:
        figures.error("model texts/s", "report", exc)
        say(f"  FAILED: {exc}\n{exc.output[-3000:]}")
        args.model_rates = {}

    say("\nCold: the model alone vs a cold drain / reconcile (empty cache, empty index)")
    try:
        run = child(env, "cold", "--folder", str(folder))
        r = run.result
        (m1, c1), (m2, c2), (m3, c3) = r["model"]
        say(
            f"  {r['objects']} objects, {r['distinct_texts']} distinct embedding texts; "
            f"batch {r['batch_size']}, {r['threads']} threads; the process's peak RSS "
            f"{run.peak_mb:.0f} MB"
        )
        say(
            f"  model alone (LocalEmbedder.embed on the distinct texts, wall / CPU s): "
            f"{m1:.2f}/{c1:.1f} before the drain, {m2:.2f}/{c2:.1f} between, {m3:.2f}/{c3:.1f} "
            f"after the reconcile ({r['distinct_texts'] / min(m1, m2, m3):.1f} texts/s at best)"
        )
        say(
            f"  cold drain(): {r['drain'][0]:.2f} s wall, {r['drain'][1]:.1f} s CPU; "
            f"{r['drain_written']} written, {r['drain_failed']} failed; the model embedded "
            f"{r['drain_model_texts']} texts in {r['drain_inside_model']:.2f} s of it; the index "
            f"holds {r['drain_index_objects']} objects, vectors {r['drain_index_vectors']}"
            + (f"; error: {r['drain_error']}" if r["drain_error"] else "")
        )
        say(
            f"  cold sync_weaviate --target embedded (call_command, same process): "
            f"{r['reconcile'][0]:.2f} s wall, {r['reconcile'][1]:.1f} s CPU; the model "
            f"embedded {r['reconcile_model_texts']} texts in {r['reconcile_inside_model']:.2f} s "
            f"of it; the index holds {r['reconcile_index_objects']} objects"
        )
        for line in r["reconcile_output"].splitlines():
            if line.startswith(("all ", "Exit code")):
                say(f"    {line}")
        say(f"  memory: {r['memory']}")
        say(f"  1-minute load average at the drain / the reconcile: {r['load']}")
        for name, (seconds, _cpu), model, inside in (
            ("drain", r["drain"], (m1 + m2) / 2, r["drain_inside_model"]),
            ("reconcile", r["reconcile"], (m2 + m3) / 2, r["reconcile_inside_model"]),
        ):
            overhead = (seconds - model) / model
            split = (seconds - inside) / inside if inside else float("nan")
            spread = max(m1, m2, m3) / min(m1, m2, m3)
            caveat = (
                f"; UNRELIABLE: the model-alone runs differ by x{spread:.2f} (machine load), "
                "trust the same-interval figure"
                if spread > 1.15 or overhead < 0
                else ""
            )
            figures.add(
                f"cold {name}: overhead over the model ({r['objects']} objects)",
                f"{overhead * 100:.1f} % ({seconds:.2f} s vs the model alone {model:.2f} s, "
                f"mean of the runs around it); in the same interval: "
                f"{split * 100:.1f} % over the {inside:.2f} s spent in the model during it"
                + caveat,
                f"<= {GOAL_COLD_OVERHEAD * 100:.0f} %",
                overhead <= GOAL_COLD_OVERHEAD,
            )
            say(
                f"  overhead of the {name}: ({seconds:.2f} - {model:.2f}) / {model:.2f} = "
                f"{overhead * 100:.1f} % [goal <= 30 %: {verdict(overhead <= GOAL_COLD_OVERHEAD)}]"
                f"; its time outside the model / inside: {split * 100:.1f} %"
            )
    except StepFailed as exc:
        figures.error("cold overhead", "<= 30 %", exc)
        say(f"  FAILED: {exc}\n{exc.output[-3000:]}")


def sync(env: dict, index: Path, *extra: str, **env_extra: str) -> Run:
    run_env = {**env, "AGIRA_EMBEDDED_PATH": str(index), **env_extra}
    return manage(run_env, "sync_weaviate", "--target", "embedded", *extra, check=False)


def describe_run(name: str, run: Run, objects: int | None = None) -> str:
    rate = f", {objects / run.seconds:,.0f} objects/s" if objects else ""
    code = f" EXIT {run.code}" if run.code else ""
    return (
        f"  {name:<34} {run.seconds:7.2f} s ({run.own_seconds:6.2f} s in the command{rate})"
        f"  peak RSS {run.peak_mb:6.1f} MB  {run.table()}{code}"
    )


def failed_run(run: Run) -> bool:
    return run.code != 0 or not run.totals() or run.totals().get("failed", 0) > 0


def phase_large(args, root: Path, figures: Figures) -> dict:
    folder = root / "large"
    began = time.perf_counter()
    env, objects, items = seed(folder, args.objects)
    say(
        f"\nLarge data set: {objects} objects ({items} items) seeded in "
        f"{time.perf_counter() - began:.1f} s, dated a day back"
    )
    index = folder / "index" / "agira.db"
    index_none = folder / "index" / "no-vectors.db"

    prefill = child(env, "prefill")
    p = prefill.result
    say(
        f"  EmbeddingCache prefilled (deterministic random unit vectors, keys as the sync's): "
        f"{p['added']} rows for {p['distinct_texts']} distinct texts of {p['objects']} objects "
        f"in {prefill.seconds:.1f} s; the model embedded {p['model_texts']} texts"
    )
    cache_rows = db_scalar(folder, "SELECT count(*) FROM core_embeddingcache")

    say("\nsync_weaviate runs (each its own process; columns: created updated unchanged ...)")
    none_run = sync(env, index_none, "--full", "--force", AGIRA_EMBEDDER_PROVIDER="none")
    say(describe_run("--full, no vectors (provider none)", none_run, objects))
    vec_run = sync(env, index, "--full", "--force")
    say(describe_run("--full, vectors from the cache", vec_run, objects))
    cache_after = db_scalar(folder, "SELECT count(*) FROM core_embeddingcache")
    say(f"    EmbeddingCache rows before/after: {cache_rows}/{cache_after} (no text embedded)")
    resync = sync(env, index, "--full", "--force")
    say(describe_run("re-sync --full, cache warm", resync, objects))
    cache_after_resync = db_scalar(folder, "SELECT count(*) FROM core_embeddingcache")
    for run in (none_run, vec_run, resync):
        if failed_run(run):
            figures.problems.append(f"a full sync_weaviate run failed:\n{run.output[-6000:]}")

    rate = objects / resync.seconds
    figures.add(
        f"re-sync, every embedding cached ({objects} objects)",
        f"{rate:,.0f} objects/s ({resync.seconds:.1f} s end to end; "
        f"{objects / resync.own_seconds:,.0f}/s in the command); cache rows "
        f"{cache_after}->{cache_after_resync}",
        f">= {GOAL_RESYNC_RATE:,.0f} objects/s",
        rate >= GOAL_RESYNC_RATE and not failed_run(resync),
    )
    ratio = vec_run.seconds / none_run.seconds
    own_ratio = vec_run.own_seconds / none_run.own_seconds
    figures.add(
        f"--full with cached vectors / without vectors ({objects} objects, fresh files)",
        f"x{ratio:.2f} ({vec_run.seconds:.1f} s / {none_run.seconds:.1f} s; in the command "
        f"x{own_ratio:.2f}); cache rows {cache_rows}->{cache_after}",
        f"<= {GOAL_VECTOR_RATIO}",
        ratio <= GOAL_VECTOR_RATIO and not failed_run(vec_run) and not failed_run(none_run),
    )

    settle = sync(env, index)
    say(describe_run("plain run after the full runs", settle))

    changed = objects // 100
    changed_items = min(changed, items)
    with sqlite3.connect(folder / "agira.sqlite3") as conn:
        conn.execute(
            "UPDATE core_item SET title = title || ' (changed)', updated_at = ? WHERE id IN "
            "(SELECT id FROM core_item ORDER BY id LIMIT ?)",
            (db_now(), changed_items),
        )
    prefill2 = child(env, "prefill")
    added = prefill2.result["added"]
    rates = getattr(args, "model_rates", {})
    model_rate = rates.get("256-token texts, batch 32") or 0
    estimate = (
        f"; at the model's 256-token rate ({model_rate:.1f}/s) they would add "
        f"{added / model_rate:.1f} s"
        if model_rate
        else ""
    )
    say(
        f"  {changed_items} item titles changed by SQL (1 %); {added} new embedding texts "
        f"prefilled in the cache{estimate}"
    )
    incremental = sync(env, index)
    say(describe_run("incremental (1 % changed)", incremental))
    done = incremental.totals()
    if done.get("updated") != changed_items:
        figures.problems.append(
            f"the incremental run updated {done.get('updated')} objects, not {changed_items}:\n"
            f"{incremental.output[-3000:]}"
        )
    inc_ratio = incremental.seconds / resync.seconds
    own_inc = incremental.own_seconds / resync.own_seconds
    figures.add(
        "incremental (1 % changed) / full run (the re-sync)",
        f"{inc_ratio:.3f} ({incremental.seconds:.1f} s / {resync.seconds:.1f} s; in the "
        f"command {own_inc:.3f}); {incremental.table()}",
        f"<= {GOAL_INCREMENTAL}",
        inc_ratio <= GOAL_INCREMENTAL and done.get("updated") == changed_items,
    )

    # Nothing changed: writes and reads.
    mirror = mirror_path(folder, index)
    before = index_snapshot(index)
    agreement = mirror_agreement(index, mirror)
    run_started = db_now()
    records_total = db_scalar(folder, "SELECT count(*) FROM core_syncrecord")
    cache_before = db_scalar(folder, "SELECT count(*) FROM core_embeddingcache")
    warm = sync(env, index)
    after = index_snapshot(index)
    records_changed = db_scalar(
        folder, "SELECT count(*) FROM core_syncrecord WHERE changed_at >= ?", (run_started,)
    )
    cache_after_warm = db_scalar(folder, "SELECT count(*) FROM core_embeddingcache")
    say(describe_run("nothing changed", warm))
    say(f"    index before: {before}")
    say(f"    index after:  {after}")
    say(
        f"    sync records changed during the run: {records_changed} of {records_total}; "
        f"cache rows {cache_before}->{cache_after_warm}"
    )
    say(f"    mirror ({mirror.name}) vs index before the run: {agreement}")
    t = warm.totals()
    no_writes = (
        before == after
        and records_changed == 0
        and t.get("created") == t.get("updated") == t.get("deleted") == 0
        and warm.code == 0
    )
    figures.add(
        "nothing changed: writes nothing",
        f"{warm.table()}; objects max(version) {before['max_version']}->{after['max_version']}, "
        f"write counter {before['write_counter']}->{after['write_counter']}, sum(version) "
        f"{'unchanged' if before['sum_version'] == after['sum_version'] else 'CHANGED'}, "
        f"records changed {records_changed}",
        "0 writes",
        no_writes,
    )
    clean = (
        agreement is not None
        and agreement["index_pairs_not_in_mirror"] == 0
        and agreement["mirror_entries_not_in_index"] == 0
    )
    inference = (
        "before the run every (uuid, version) of the index was in the mirror and the mirror "
        "held nothing else, so _scan_versions finds no stale entry, and with 0 writes nothing "
        "is read back"
        if clean
        else f"mirror and index disagree before the run ({agreement}): documents are read"
    )
    # Counted: the same run again, in a helper process that runs the command with
    # call_command and then reports the embedded target's own counters (EmbeddedTarget.stats:
    # documents read by fetch_versioned/iter_documents, points upserted), if the code keeps
    # them. Nothing is wrapped.
    try:
        counted = child({**env, "AGIRA_EMBEDDED_PATH": str(index)}, "reconcile")
        c = counted.result
        again = index_snapshot(index)
        say(
            f"  nothing changed, again in a helper (call_command): {c['totals']}; the embedded "
            f"target's counters: {c['stats']} (the counter is live: reading 1 document afterwards "
            f"counted {c['probe']})"
        )
        if c["counts_reads"]:
            read = c["stats"].get("documents read", 0)
            written = c["stats"].get("upserted points", 0)
            figures.add(
                "nothing changed: reads no document",
                f"{read} documents read, {written} points upserted (EmbeddedTarget.stats, "
                f"counted in the run's own process); index file unchanged: {again == after}; "
                f"also consistent with the mirror: {inference}",
                "0 documents read",
                read == 0 and written == 0 and again == after,
            )
        else:
            raise StepFailed("reconcile helper", "the embedded target counts no reads", 0)
    except StepFailed as exc:
        figures.add(
            "nothing changed: reads no document",
            f"inferred, not observed ({exc}): {inference}; a hook to prove it: the command "
            "printing _scan_versions' `read` count, or EmbeddedTarget.stats counting the "
            "documents read by fetch_versioned/fetch/iter_documents",
            "0 documents read",
            None if clean else False,
        )
    return {"env": env, "folder": folder, "index": index, "objects": objects, "resync": resync}


def phase_web(args, large: dict, figures: Figures) -> None:
    env, folder, index = large["env"], large["folder"], large["index"]
    env = {**env, "AGIRA_EMBEDDED_PATH": str(index)}
    session = child(env, "session").result["session"]
    say(f"\nSearch at the service level (search_objects in one process, no HTTP; load {loadavg()})")
    try:
        service = child(
            env, "search", "--folder", str(folder), "--searches", str(args.searches * 2)
        )
        for name, values in service.result["timings"].items():
            say(latency_line(name, values))
        say(
            f"  that process: {service.result['memory']} (launcher's peak {service.peak_mb:.0f} MB)"
        )
    except StepFailed as exc:
        figures.error("search at the service level", "report", exc)
    log = folder / "gunicorn.log"
    say(f"\nWeb: gunicorn, 1 sync worker, 127.0.0.1, index {index.name} (load {loadavg()})")
    server = Server(env, log)
    try:
        client = http_client(server, session)
        queries = Queries(folder)
        # Warm-up (not measured): the first page, the first button, the first search of
        # each mode (the worker loads the model for the first semantic query).
        warm_objects = sample_objects(folder, 5, 1)
        for object_type, object_id in warm_objects:
            timed_get(client, f"/weaviate/status/{object_type}/{object_id}/", htmx=True)
            timed_get(client, f"/weaviate/object/{object_type}/{object_id}/", htmx=True)
        for mode, filt in SEARCH_COMBOS:
            ms, response = timed_get(client, "/search/", params=queries.next(mode, filt))
            if response.status_code != 200:
                raise StepFailed("warm-up search", response.text[:3000], response.status_code)

        buttons: list[float] = []
        errors = 0
        for object_type, object_id in sample_objects(folder, args.buttons, 2):
            ms, response = timed_get(
                client, f"/weaviate/status/{object_type}/{object_id}/", htmx=True
            )
            buttons.append(ms)
            errors += response.status_code != 200
        say(latency_line("button endpoint", buttons, GOAL_BUTTON_MS) + f", errors {errors}")
        figures.add(
            "sync button endpoint",
            f"p95 {percentile(buttons, 95):.1f} ms (p50 {percentile(buttons, 50):.1f}, "
            f"n={len(buttons)}, errors {errors})",
            f"p95 <= {GOAL_BUTTON_MS:g} ms",
            percentile(buttons, 95) <= GOAL_BUTTON_MS and not errors,
        )

        with contextlib.closing(sqlite3.connect(folder / "agira.sqlite3")) as conn:
            item_ids = [row[0] for row in conn.execute("SELECT id FROM core_item")]
        rng = random.Random(3)
        views: list[float] = []
        pages: list[float] = []
        counts: list[int] = []
        errors = 0
        for item_id in rng.sample(item_ids, min(args.pages, len(item_ids))):
            ms, response = timed_get(client, f"/items/{item_id}/")
            errors += response.status_code != 200
            urls = re.findall(r'hx-get="([^"]*/weaviate/status/[^"]+)"', response.text)
            total = ms
            for url in urls:
                button_ms, button = timed_get(client, url, htmx=True)
                total += button_ms
                errors += button.status_code != 200
            pages.append(ms)
            views.append(total)
            counts.append(len(urls))
        say(latency_line("item page alone", pages))
        say(
            latency_line("item page + its buttons (sum)", views, GOAL_ITEM_PAGE_MS)
            + f", buttons per page mean {sum(counts) / len(counts):.1f} max {max(counts)}"
            + f", errors {errors}"
        )
        figures.add(
            "item page + every button request (page + sum of buttons, sequential)",
            f"p95 {percentile(views, 95):.1f} ms (page alone p95 {percentile(pages, 95):.1f}; "
            f"{sum(counts) / len(counts):.1f} buttons/page, max {max(counts)}; n={len(views)}, "
            f"errors {errors})",
            f"p95 <= {GOAL_ITEM_PAGE_MS:g} ms",
            percentile(views, 95) <= GOAL_ITEM_PAGE_MS and not errors,
        )

        modal: list[float] = []
        errors = 0
        for object_type, object_id in sample_objects(folder, args.modals, 4):
            ms, response = timed_get(
                client, f"/weaviate/object/{object_type}/{object_id}/", htmx=True
            )
            modal.append(ms)
            errors += response.status_code != 200 or "object_id" not in response.text
        say(latency_line("modal", modal, GOAL_MODAL_MS) + f", errors {errors}")
        figures.add(
            "modal (weaviate/object, htmx fragment)",
            f"p95 {percentile(modal, 95):.1f} ms (p50 {percentile(modal, 50):.1f}, "
            f"n={len(modal)}, errors {errors})",
            f"p95 <= {GOAL_MODAL_MS:g} ms",
            percentile(modal, 95) <= GOAL_MODAL_MS and not errors,
        )

        # Related objects (the item page's lazy tab) and possible duplicates (the new
        # item form's hint, a POST with the draft; its query's embedding included).
        related: list[float] = []
        errors = 0
        for item_id in rng.sample(item_ids, min(args.modals, len(item_ids))):
            ms, response = timed_get(client, f"/related/item/{item_id}/", htmx=True)
            related.append(ms)
            errors += response.status_code != 200 or 'id="related-table"' not in response.text
        say(latency_line("related (item tab)", related, GOAL_RELATED_MS) + f", errors {errors}")
        figures.add(
            "related objects (item tab, htmx fragment)",
            f"p95 {percentile(related, 95):.1f} ms (p50 {percentile(related, 50):.1f}, "
            f"n={len(related)}, errors {errors})",
            f"p95 <= {GOAL_RELATED_MS:g} ms",
            percentile(related, 95) <= GOAL_RELATED_MS and not errors,
        )
        timed_get(client, "/items/new/")  # sets the CSRF cookie
        token = client.cookies.get("csrftoken", "")
        with contextlib.closing(sqlite3.connect(folder / "agira.sqlite3")) as conn:
            descriptions = [
                row[0]
                for row in conn.execute(
                    "SELECT description FROM core_item ORDER BY length(description) DESC LIMIT 500"
                )
            ]
        duplicates: list[float] = []
        errors = 0
        for n in range(args.modals):
            # A new title and a demo description of several sentences: the draft
            # as it stands when its author pauses after writing a paragraph.
            draft = queries.next("semantic", "type")["q"]
            started_at = time.perf_counter()
            response = client.post(
                "/items/similar/",
                data={"title": draft, "description": descriptions[n % len(descriptions)]},
                headers={"HX-Request": "true", "X-CSRFToken": token},
            )
            duplicates.append((time.perf_counter() - started_at) * 1000)
            errors += response.status_code != 200 or 'id="duplicates-found"' not in response.text
        say(
            latency_line(
                "possible duplicates (with the query's embedding)", duplicates, GOAL_DUPLICATES_MS
            )
            + f", errors {errors}"
        )
        figures.add(
            "possible duplicates (POST of a draft, embedding included)",
            f"p95 {percentile(duplicates, 95):.1f} ms (p50 {percentile(duplicates, 50):.1f}, "
            f"n={len(duplicates)}, errors {errors})",
            f"p95 <= {GOAL_DUPLICATES_MS:g} ms",
            percentile(duplicates, 95) <= GOAL_DUPLICATES_MS and not errors,
        )

        idle: dict[tuple[str, str], list[float]] = {combo: [] for combo in SEARCH_COMBOS}
        hits: dict[tuple[str, str], list[int]] = {combo: [] for combo in SEARCH_COMBOS}
        problems: list[str] = []
        for _ in range(args.searches):
            for combo in SEARCH_COMBOS:
                params = queries.next(*combo)
                ms, response = timed_get(client, "/search/", params=params)
                idle[combo].append(ms)
                hits[combo].append(response.text.count("data-result-type="))
                wrong = check_search(response, params)
                if wrong:
                    problems.append(f"{combo}: {wrong}")
        say(f"  /search/ idle (errors {len(problems)}{': ' + problems[0] if problems else ''})")
        for combo in SEARCH_COMBOS:
            values = idle[combo]
            say(
                latency_line(f"{combo[0]}, {combo[1]} filter", values, GOAL_SEARCH_MS)
                + f", hits/page mean {sum(hits[combo]) / len(hits[combo]):.1f}"
            )
            figures.add(
                f"search {combo[0]}, {combo[1]} filter (idle)",
                f"p95 {percentile(values, 95):.1f} ms (p50 {percentile(values, 50):.1f}, "
                f"n={len(values)})",
                f"p95 <= {GOAL_SEARCH_MS:g} ms",
                percentile(values, 95) <= GOAL_SEARCH_MS and not problems,
            )

        # The same while a full re-sync runs in another process.
        busy: dict[tuple[str, str], list[float]] = {combo: [] for combo in SEARCH_COMBOS}
        busy_problems: list[str] = []
        started = time.perf_counter()
        proc = launch(
            env, ["manage.py", "sync_weaviate", "--full", "--force", "--target", "embedded"]
        )
        count = 0
        while proc.poll() is None:
            combo = SEARCH_COMBOS[count % len(SEARCH_COMBOS)]
            params = queries.next(*combo)
            try:
                ms, response = timed_get(client, "/search/", params=params)
            except Exception as exc:
                busy_problems.append(f"{combo}: {type(exc).__name__}: {exc}")
                count += 1
                continue
            busy[combo].append(ms)
            wrong = check_search(response, params)
            if wrong:
                busy_problems.append(f"{combo}: {wrong}")
            count += 1
        concurrent = finish(proc, started, "sync_weaviate during searches", check=False)
        say(
            describe_run("the concurrent --full --force", concurrent, large["objects"])
            + f"  (alone: {large['resync'].seconds:.1f} s)"
        )
        say(
            f"  /search/ during it: {count} searches, errors {len(busy_problems)}"
            + (f" (first: {busy_problems[0]})" if busy_problems else "")
        )
        if failed_run(concurrent):
            figures.problems.append(
                f"sync_weaviate --full during the searches failed:\n{concurrent.output[-6000:]}"
            )
        for combo in SEARCH_COMBOS:
            values = busy[combo]
            say(latency_line(f"{combo[0]}, {combo[1]} filter", values, GOAL_SEARCH_MS))
            figures.add(
                f"search {combo[0]}, {combo[1]} filter (during --full)",
                f"p95 {percentile(values, 95):.1f} ms (p50 {percentile(values, 50):.1f}, "
                f"n={len(values)})",
                f"p95 <= {GOAL_SEARCH_MS:g} ms",
                bool(values) and percentile(values, 95) <= GOAL_SEARCH_MS and not busy_problems,
            )
        figures.add(
            "searches during the --full run / errors",
            f"{count} searches in {concurrent.seconds:.1f} s, {len(busy_problems)} errors; the run "
            f"{concurrent.table()}, exit {concurrent.code}",
            "0 errors",
            not busy_problems and not failed_run(concurrent),
        )
        if busy_problems:
            figures.problems.append(
                "searches during the --full run:\n" + "\n".join(busy_problems[:20])
            )
        if problems:
            figures.problems.append("idle searches:\n" + "\n".join(problems[:20]))
        client.close()
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            tail = log.read_text()[-3000:]
            if tail.strip():
                say(f"  gunicorn log (tail):\n{tail}")

    # Memory: a fresh server whose worker does nothing but set up Django and search.
    server = Server(env, folder / "gunicorn-memory.log")
    try:
        client = http_client(server, session)
        queries = Queries(folder, seed_value=11)
        errors = 0
        latencies: list[float] = []
        for n in range(args.memory_searches):
            mode = "keyword" if n % 2 == 0 else "semantic"
            filt = "type" if (n // 2) % 2 == 0 else "project"
            params = queries.next(mode, filt)
            ms, response = timed_get(client, "/search/", params=params)
            latencies.append(ms)
            errors += bool(check_search(response, params))
        pid = server.worker_pid()
        worker = Server.memory(pid)
        master = Server.memory(server.proc.pid)
        client.close()
    finally:
        server.stop()
    size = file_size(index)
    nan = float("nan")
    rss, hwm = worker.get("VmRSS", nan), worker.get("VmHWM", nan)
    anon, mapped = worker.get("RssAnon", nan), worker.get("RssFile", nan)
    say(
        f"\nMemory: a fresh gunicorn worker after {args.memory_searches} searches (half keyword, "
        f"half semantic; errors {errors}; p95 {percentile(latencies, 95):.1f} ms): VmRSS "
        f"{rss:.1f} MB (anonymous {anon:.1f} MB, file-backed {mapped:.1f} MB: mapped files such "
        f"as the index and libraries, page cache the kernel can drop), peak VmHWM {hwm:.1f} MB "
        f"(master {master.get('VmRSS', 0):.1f} MB)"
    )
    say(f"  index file {index.name}: {size / 1e6:.1f} MB (with -wal/-shm)")
    figures.add(
        f"web worker memory after {args.memory_searches} searches ({large['objects']} objects)",
        f"VmRSS {rss:.1f} MB (anonymous {anon:.1f}, file-backed {mapped:.1f}), peak {hwm:.1f} MB"
        f" (errors {errors})",
        "report",
        None,
    )
    figures.add(
        f"index file size ({large['objects']} objects)", f"{size / 1e6:.1f} MB", "report", None
    )


def versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for name in ("django", "apsw", "sqlite-vec", "onnxruntime", "gunicorn"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            parts.append(f"{name} {version(name)}")
    return ", ".join(parts)


def code_digest(root: Path) -> str:
    """A hash of the project's Python and templates under `root`."""
    digest = hashlib.sha256()
    for folder in ("core", "agira", "templates"):
        for path in sorted((root / folder).rglob("*")):
            if (
                path.is_file()
                and path.suffix in (".py", ".html")
                and "__pycache__" not in path.parts
            ):
                digest.update(path.relative_to(root).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def git_head() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    return "?"


def snapshot(root: Path) -> Path:
    """Copy the working tree (without .venv, var/, .git) to measure one code version."""
    target = root / "src"
    shutil.copytree(REPO_ROOT, target, ignore=shutil.ignore_patterns(*SNAPSHOT_IGNORE))
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 objects, fewer samples")
    parser.add_argument("--cold-objects", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--titles", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--long", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--searches", type=int, default=40, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        setup_django()
        CHILDREN[args.child](args)
        return 0

    if args.quick:
        args.objects = 10_000
    full_size = not args.quick
    args.titles = 512 if full_size else 256
    args.long = 128 if full_size else 64
    args.buttons = 300 if full_size else 100
    args.pages = 60 if full_size else 25
    args.modals = 200 if full_size else 80
    args.searches = 40 if full_size else 20
    args.memory_searches = 200

    global CODE_ROOT
    root = Path(tempfile.mkdtemp(prefix="agira-bench-index-"))
    CODE_ROOT = snapshot(root)
    code_measured = code_digest(CODE_ROOT)
    began = time.perf_counter()
    say(f"bench_index: {args.objects} objects{' (--quick)' if args.quick else ''}, in {root}")
    say(f"  {os.cpu_count()} CPUs, {versions()}; load average {loadavg()}")
    say(
        f"  code measured: a copy of the working tree taken at the start ({CODE_ROOT}): HEAD "
        f"{git_head()}, core/agira/templates sha256 {code_measured}"
    )
    figures = Figures()
    try:
        phase_small(args, root, figures)
        try:
            large = phase_large(args, root, figures)
        except StepFailed as exc:
            figures.error("large data set", "-", exc)
            large = None
        if large is not None:
            try:
                phase_web(args, large, figures)
            except StepFailed as exc:
                figures.error("web figures", "-", exc)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    say(f"\nFigures to meet ({args.objects} objects; load average now {loadavg()})")
    width = max(len(r[0]) for r in figures.rows)
    for name, measured, goal, mark in figures.rows:
        say(f"  [{mark:<4}] {name:<{width}}  goal {goal}\n           {measured}")
    if figures.problems:
        say("\nProblems found")
        for problem in figures.problems:
            say(f"- {problem}")
    now = code_digest(REPO_ROOT)
    if now != code_measured:
        say(
            f"\nNote: the working tree changed during the run (now HEAD {git_head()}, sha256 "
            f"{now}); the figures are those of the copy taken at the start ({code_measured})."
        )
    say(f"\nTotal {time.perf_counter() - began:.0f} s" + (f"; kept {root}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
