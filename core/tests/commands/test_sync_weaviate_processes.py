"""`manage.py sync_weaviate` as real processes: two at once, one killed with
SIGKILL and run again, one on a stdin that is not a terminal.

The processes share a file-based SQLite database (migrated and seeded once
per module, copied per test) and the in-process Weaviate-compatible server of
this test session, whose store and call counters the tests read.
"""

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from core.testing.weaviate_server.faults import OBJECTS_CREATED, OBJECTS_DELETED, OBJECTS_UPDATED
from core.tests import processes
from core.tests.processes import base_env, finish

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


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Path, Path]:
    """A migrated database with the demo data, not indexed."""
    var_dir = tmp_path_factory.mktemp("reconcile-var")
    db_file = var_dir / "template.sqlite3"
    env = base_env(var_dir, db_file)
    env["AGIRA_WEAVIATE_ENABLED"] = "false"
    processes.manage(env, "migrate", "-v0")
    processes.manage(env, "seed_demo", "--items", "40", "--no-index")
    processes.checkpoint(db_file)
    return var_dir, db_file


@pytest.fixture
def env(seeded, tmp_path, weaviate_server) -> dict:
    var_dir, template = seeded
    return processes.copied_env(template, var_dir, tmp_path, weaviate_server)


def start(env: dict, *args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    return processes.start(env, "sync_weaviate", *args, stdin=stdin)


def db_total(env: dict) -> int:
    with sqlite3.connect(env["_DB"]) as conn:
        return sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES)  # noqa: S608


def runs(env: dict) -> list[dict]:
    with sqlite3.connect(env["_DB"]) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM core_reconcilerun ORDER BY id").fetchall()
    out = []
    for row in rows:
        run = dict(row)
        run["counts"] = json.loads(run["counts"] or "{}")
        run["totals"] = {
            a: sum(r.get(a, 0) for r in run["counts"].values())
            for a in ("created", "updated", "unchanged", "deleted", "failed")
        }
        out.append(run)
    return out


def assert_exact(env: dict, server) -> None:
    """The index holds exactly the database: one object per row, nothing to do."""
    objects = server.store.objects("AgiraObject")
    keys = [(p["type"], p["object_id"]) for p in objects.values()]
    assert len(keys) == len(set(keys)) == db_total(env)
    code, out, _err = finish(start(env, "--dry-run"))
    assert code == 0, out
    last = runs(env)[-1]
    assert last["totals"]["unchanged"] == db_total(env)
    assert last["totals"]["created"] == last["totals"]["updated"] == last["totals"]["deleted"] == 0


def test_two_runs_at_once_one_works_one_exits_2(env, weaviate_server):
    # Slow answers make the runs overlap for certain.
    weaviate_server.faults.set_latency(0.1, protocol="grpc")
    first = start(env, "--batch-size", "20")
    second = start(env, "--batch-size", "20")
    results = [finish(first), finish(second)]
    weaviate_server.faults.set_latency(0.0, protocol="grpc")
    codes = sorted(code for code, _out, _err in results)
    assert codes == [0, 2], results
    loser_err = next(err for code, _out, err in results if code == 2)
    done = [r for r in runs(env) if r["status"] == "completed"]
    assert len(done) == 1
    assert f"run #{done[0]['id']}" in loser_err
    assert f"pid {done[0]['pid']}" in loser_err
    assert "Another run holds weaviate" in loser_err
    assert done[0]["totals"]["created"] == db_total(env)
    assert weaviate_server.counters[OBJECTS_CREATED] == db_total(env)
    assert weaviate_server.counters[OBJECTS_UPDATED] == 0
    assert_exact(env, weaviate_server)


def test_with_two_targets_a_second_run_leaves_at_once_and_the_first_does_both(
    env, weaviate_server, tmp_path
):
    """Weaviate and the embedded index: the run that started first takes both
    locks before any work and does both targets; the second meets a held lock
    at its first target, takes none, and exits 2 naming the holder."""
    env = {
        **env,
        "AGIRA_EMBEDDED_ENABLED": "true",
        "AGIRA_EMBEDDED_PATH": str(tmp_path / "index" / "agira.db"),
        "AGIRA_EMBEDDER_PROVIDER": "none",
    }
    weaviate_server.faults.set_latency(0.1, protocol="grpc")
    try:
        first = start(env, "--batch-size", "10")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not runs(env) and first.poll() is None:
            time.sleep(0.05)
        assert runs(env), finish(first)
        second = start(env, "--batch-size", "10")
        code, out, err = finish(second)
        assert first.poll() is None, "the first run had ended: the test proves nothing"
    finally:
        weaviate_server.faults.set_latency(0.0, protocol="grpc")
    first_code, first_out, first_err = finish(first)

    assert code == 2, (out, err)
    holder = next(r for r in runs(env) if r["target"] == "embedded")
    assert f"Another run holds embedded: run #{holder['id']}" in err
    assert f"pid {first.pid}" in err
    assert f"Left to run #{holder['id']}, which holds embedded" in err
    assert first_code == 0, (first_out, first_err)
    after = runs(env)
    # The second run left no run of its own: it did nothing for either target.
    assert {r["pid"] for r in after} == {first.pid}
    assert sorted((r["target"], r["status"]) for r in after) == [
        ("embedded", "completed"),
        ("weaviate", "completed"),
    ]
    assert all(r["totals"]["created"] == db_total(env) for r in after)
    assert weaviate_server.counters[OBJECTS_CREATED] == db_total(env)


def test_a_run_killed_with_sigkill_is_finished_by_the_next_one(env, weaviate_server):
    total = db_total(env)
    weaviate_server.faults.set_latency(0.15, protocol="grpc")
    victim = start(env, "--batch-size", "5")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = runs(env)
        if current and current[-1]["totals"]["created"] >= 20:
            break
        time.sleep(0.05)
    else:
        victim.kill()
        pytest.fail(f"the run made no progress: {finish(victim)}")
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    weaviate_server.faults.set_latency(0.0, protocol="grpc")
    time.sleep(0.5)  # a batch the victim had in flight lands now, if at all
    killed = runs(env)[-1]
    assert killed["status"] == "in_progress"
    assert killed["lock"] == "weaviate"
    held = weaviate_server.store.count("AgiraObject")
    assert 0 < held < total
    weaviate_server.counters.reset()

    code, out, err = finish(start(env, "--batch-size", "50"))
    assert code == 0, (out, err)
    killed_after, rerun = runs(env)[-2:]
    assert killed_after["id"] == killed["id"]
    assert killed_after["status"] == "failed"
    assert killed_after["lock"] is None
    assert f"holder pid {victim.pid}" in killed_after["error"]
    assert "died" in killed_after["error"]
    assert f"run #{killed['id']} was stale" in out
    # Nothing written twice: what the killed run wrote is found unchanged.
    assert rerun["totals"]["created"] == total - held
    assert rerun["totals"]["unchanged"] == held
    assert rerun["totals"]["updated"] == rerun["totals"]["deleted"] == 0
    assert weaviate_server.counters[OBJECTS_CREATED] == total - held
    assert weaviate_server.counters[OBJECTS_UPDATED] == 0
    assert weaviate_server.counters[OBJECTS_DELETED] == 0
    assert_exact(env, weaviate_server)


def test_a_non_tty_run_never_waits_for_input(env, weaviate_server):
    # stdin stays open and silent: a prompt would hang until the timeout.
    proc = start(env, "--full", stdin=subprocess.PIPE)
    try:
        code, out, err = finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, (out, err)
    assert "Continue?" not in out + err
    assert runs(env)[-1]["status"] == "completed"
    # Plain log lines, not a progress bar.
    assert "weaviate: item:" in out
    assert "\r" not in out + err


def test_index_down_exits_3_from_a_process(env, weaviate_server):
    weaviate_server.down()
    try:
        code, _out, err = finish(start(env), timeout=60)
    finally:
        weaviate_server.up()
    assert code == 3
    assert "Weaviate is unreachable or misconfigured (exit 3)" in err
    assert runs(env)[-1]["status"] == "failed"


def test_on_a_terminal_full_asks_once_unless_forced(env, weaviate_server):
    import pty

    master, slave = pty.openpty()
    try:
        proc = start(env, "--full", stdin=slave)
        os.write(master, b"n\n")
        code, out, _err = finish(proc, timeout=60)
        assert code == 0
        assert out.count("Continue? [y/N]") == 1
        assert "Nothing done." in out
        assert runs(env) == []
        assert weaviate_server.store.count("AgiraObject") == 0

        # --force: no question, even on a terminal that never answers.
        code, out, _err = finish(start(env, "--full", "--force", stdin=slave), timeout=60)
        assert code == 0
        assert "Continue?" not in out
        assert runs(env)[-1]["status"] == "completed"
    finally:
        os.close(master)
        os.close(slave)
