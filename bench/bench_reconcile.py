"""Benchmark of `manage.py sync_weaviate` against the in-process Weaviate-compatible server.

    .venv/bin/python bench/bench_reconcile.py [--objects 10000 100000] [--batch-size 500]

For each size N, in a fresh temporary directory (SQLite database, media; `var/` is never
touched), on loopback only:

1. migrate, and `seed_demo --items K --no-index` with K chosen to give about N objects,
   dated a day back (demo rows are seconds old; most rows of a real database are older
   than the last run, and the reconcile command re-reads rows changed less than
   AGIRA_RECONCILE_MARGIN_SECONDS before it);
2. cold run: `sync_weaviate` into an empty index (creates everything);
3. full run: `sync_weaviate --full --force` (rewrites everything);
4. 1% of the objects (item titles, by SQL behind Agira's back, setting `updated_at` as
   `QuerySet.update(title=..., updated_at=now())` would) are changed;
5. incremental run: `sync_weaviate` (must update exactly those 1%, leave the rest);
6. warm run: `sync_weaviate` again (must write nothing).

Every run is its own process (as from cron); its wall time and peak RSS (`wait4`'s
ru_maxrss) are measured. The server runs in this process, so its store does not count in
the command's memory. Prints the figures and the goals: incremental / full <= 0.10 and
peak RSS at the largest N / at the smallest <= 1.5.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

OBJECTS_PER_ITEM = 2.39  # what seed_demo makes per item (comments, attachments, links)
GOAL_RATIO = 0.10
GOAL_MEMORY = 1.5
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


# The command runs under this small launcher, which reports the peak RSS of its child.
# (wait4 on a child forked from this process would count the pre-exec copy of this
# process, which holds the server's whole store, in the child's peak.)
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_pid, status, usage = os.wait4(proc.pid, 0)
print(f"PEAK_RSS_KB={usage.ru_maxrss}", flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(env: dict, *args: str) -> tuple[float, float, str]:
    """Run manage.py; return (seconds, its peak RSS in MB, its output)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}")
    peak_kb = int(proc.stdout.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])
    return seconds, peak_kb / 1024, proc.stdout


def own_seconds(text: str) -> float:
    """The run's own time as the command reports it ("Exit code N after X s."): without
    the interpreter's and Django's start-up, which no reconcile design can shorten."""
    tail = text.rsplit(" after ", 1)[-1]
    return float(tail.split(" s", 1)[0])


def total_row(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("all ")]
    return " ".join(lines[-1].split()[1:]) if lines else "?"


def totals(text: str) -> dict[str, int]:
    actions = ("created", "updated", "unchanged", "deleted", "failed")
    return dict(zip(actions, map(int, total_row(text).split()), strict=True))


def bench(n: int, server, batch_size: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"agira-bench-reconcile-{n}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGIRA_")}
    env.update(
        DATABASE_URL=f"sqlite:///{folder / 'agira.sqlite3'}",
        AGIRA_VAR_DIR=str(folder),
        AGIRA_QDRANT_ENABLED="false",
        AGIRA_GRAPH_ENABLED="false",  # the indexes alone: the graph is another target
        AGIRA_WEAVIATE_ENABLED="true",
        AGIRA_WEAVIATE_URL="http://127.0.0.1",
        AGIRA_WEAVIATE_HTTP_PORT=str(server.http_port),
        AGIRA_WEAVIATE_GRPC_PORT=str(server.grpc_port),
        AGIRA_WEAVIATE_INSERT_TIMEOUT="120",
        AGIRA_WEAVIATE_QUERY_TIMEOUT="120",
        DEBUG="false",
        AGIRA_DEBUG="false",
    )
    server.reset()
    items = max(1, round(n / OBJECTS_PER_ITEM))
    t0 = time.perf_counter()
    run_measured(env, "migrate", "-v0")
    run_measured(env, "seed_demo", "--items", str(items), "--no-index")
    with sqlite3.connect(folder / "agira.sqlite3") as conn:
        objects = sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES)  # noqa: S608
        for table in TABLES:
            conn.execute(
                f"UPDATE {table} SET created_at = strftime('%Y-%m-%d %H:%M:%f', created_at,"  # noqa: S608
                " '-1 day'), updated_at = strftime('%Y-%m-%d %H:%M:%f', updated_at, '-1 day')"
            )
    print(f"\nN={n}: {objects} objects ({items} items) seeded in {time.perf_counter() - t0:.1f} s")

    cmd = ("sync_weaviate", "--batch-size", str(batch_size))
    results = {"objects": objects}
    for name, extra in (("cold", ()), ("full", ("--full", "--force"))):
        seconds, peak, text = run_measured(env, *cmd, *extra)
        results[name] = (seconds, peak, own_seconds(text))
        print(
            f"  {name:<12} {seconds:7.2f} s ({own_seconds(text):5.1f} s in the command)"
            f"  peak RSS {peak:7.1f} MB   {total_row(text)}"
        )
    changed = objects // 100
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(folder / "agira.sqlite3") as conn:
        conn.execute(
            "UPDATE core_item SET title = title || ' (changed)', updated_at = ? WHERE id IN "
            "(SELECT id FROM core_item ORDER BY id LIMIT ?)",
            (now, changed),
        )
    for name, expected in (("incremental", changed), ("warm", 0)):
        seconds, peak, text = run_measured(env, *cmd)
        results[name] = (seconds, peak, own_seconds(text))
        print(
            f"  {name:<12} {seconds:7.2f} s ({own_seconds(text):5.1f} s in the command)"
            f"  peak RSS {peak:7.1f} MB   {total_row(text)}"
        )
        done = totals(text)
        assert done["updated"] == expected, f"{name}: {done['updated']} updated, not {expected}"
        assert done["created"] == done["deleted"] == done["failed"] == 0, done
    assert server.store.count("AgiraObject") == objects, "the index does not match the database"
    print("  (columns: created updated unchanged deleted failed)")
    shutil.rmtree(folder, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()

    from core.testing.weaviate_server.server import WeaviateTestServer

    server = WeaviateTestServer()
    server.start()
    try:
        figures = {n: bench(n, server, args.batch_size) for n in args.objects}
    finally:
        server.stop()

    print("\nSummary")
    for n, r in figures.items():
        ratio = r["incremental"][0] / r["full"][0]
        print(
            f"  N={n} ({r['objects']} objects): cold {r['cold'][0]:.1f} s, full "
            f"{r['full'][0]:.1f} s, incremental (1% changed) {r['incremental'][0]:.1f} s = "
            f"{ratio:.3f} of full [{'PASS' if ratio <= GOAL_RATIO else 'MISS'} <= {GOAL_RATIO}], "
            f"warm {r['warm'][0]:.1f} s"
        )
        own = r["incremental"][2] / r["full"][2]
        print(
            f"    the runs alone (the command's own time, without start-up): full "
            f"{r['full'][2]:.1f} s, incremental {r['incremental'][2]:.1f} s = {own:.3f} of full "
            f"[{'PASS' if own <= GOAL_RATIO else 'MISS'} <= {GOAL_RATIO}]"
        )
    if len(figures) >= 2:
        small, large = min(figures), max(figures)
        for run_name in ("full", "incremental"):
            a, b = figures[small][run_name][1], figures[large][run_name][1]
            print(
                f"  peak RSS of the {run_name} run: {a:.1f} MB at N={small}, {b:.1f} MB at "
                f"N={large}: x{b / a:.2f} [{'PASS' if b / a <= GOAL_MEMORY else 'MISS'} "
                f"<= {GOAL_MEMORY}]"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
