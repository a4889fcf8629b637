"""Running a test server by hand (`python -m core.testing.<server>`)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


def serve_until_stopped(server, announce: Callable[[], str], *, prepare=None) -> int:
    """Start `server`, run `prepare(server)` if given, print the one line
    `announce()` returns (a script reads where to connect from it), and serve
    until SIGTERM or Ctrl-C; then stop it cleanly and print "stopped"."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    try:
        if prepare is not None:
            prepare(server)
        print(announce(), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    print("stopped", flush=True)
    return 0
