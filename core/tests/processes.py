"""Agira as real processes in tests: `manage.py` commands on a file-based
SQLite database, pointed at the in-process Weaviate-compatible server of the
test session (whose store, counters and faults the tests read and set)."""

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def base_env(var_dir: Path, db_file: Path) -> dict:
    """No index target but what a test turns on; the database is `db_file`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGIRA_WEAVIATE_")}
    env.update(
        DATABASE_URL=f"sqlite:///{db_file}",
        AGIRA_VAR_DIR=str(var_dir),
        AGIRA_QDRANT_ENABLED="false",
        AGIRA_EMBEDDED_ENABLED="false",
        AGIRA_GRAPH_ENABLED="false",
        AGIRA_QDRANT_PATH=str(var_dir / "qdrant"),
        PYTHONUNBUFFERED="1",
    )
    return env


def test_database_env(var_dir: Path) -> dict:
    """The environment of processes that share the test's own database (a
    PostgreSQL test database; what the test commits, they see)."""
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    assert connection.vendor == "postgresql", "processes share a file or a server database"
    auth = quote(db["USER"] or "")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"])
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = base_env(var_dir, var_dir / "unused.sqlite3")
    env["DATABASE_URL"] = url
    return env


def with_weaviate(env: dict, server) -> dict:
    return {
        **env,
        "AGIRA_WEAVIATE_ENABLED": "true",
        "AGIRA_WEAVIATE_URL": "http://127.0.0.1",
        "AGIRA_WEAVIATE_HTTP_PORT": str(server.http_port),
        "AGIRA_WEAVIATE_GRPC_PORT": str(server.grpc_port),
        "AGIRA_WEAVIATE_CONNECT_TIMEOUT": "3",
    }


def copied_env(template: Path, var_dir: Path, folder: Path, server) -> dict:
    """The environment of processes on a copy of the `template` database (in
    `folder`, as `env["_DB"]`), syncing to the Weaviate-compatible `server`."""
    db_file = folder / "agira.sqlite3"
    shutil.copy(template, db_file)
    env = with_weaviate(base_env(var_dir, db_file), server)
    env["_DB"] = str(db_file)
    return env


def manage(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command to its end; a failure shows its output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def start(env: dict, *args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def checkpoint(db_file: Path) -> None:
    """Make the file self-contained (no WAL beside it), to copy it."""
    with sqlite3.connect(db_file) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def query(db_file: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db_file, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_for(condition: Callable[[], object], *, seconds: float, what: str) -> object:
    """Poll `condition` until it is true; fail naming `what` if it never is."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.1)
