"""A guard that refuses any name lookup or TCP connection leaving loopback.

Used by the `weaviate_loopback_only` fixture and by the benchmarks, so that a
test or a measurement can prove nothing left 127.0.0.1 (Python sockets: httpx,
the client's PyPI version check; gRPC's C core connects only to the address it
is given).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: Any) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard, used for binding
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]").split("%")[0]
    if host in _LOOPBACK_NAMES or host == "":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackGuard:
    """`install()` / `uninstall()` (or use as a context manager); `blocked`
    lists every refused attempt."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self._saved: tuple | None = None

    def install(self) -> LoopbackGuard:
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        blocked = self.blocked

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_loopback(host):
                blocked.append(f"resolve {host}")
                raise socket.gaierror(socket.EAI_NONAME, f"non-loopback name blocked: {host}")
            return real_getaddrinfo(host, *args, **kwargs)

        def check(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
                blocked.append(f"connect {address[0]}:{address[1]}")
                raise ConnectionRefusedError(f"non-loopback connection blocked: {address}")

        def connect(sock: socket.socket, address: Any) -> None:
            check(sock, address)
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            check(sock, address)
            return real_connect_ex(sock, address)

        self._saved = (real_getaddrinfo, real_connect, real_connect_ex)
        socket.getaddrinfo = getaddrinfo
        socket.socket.connect = connect
        socket.socket.connect_ex = connect_ex
        return self

    def uninstall(self) -> None:
        if self._saved:
            socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = self._saved
            self._saved = None

    def __enter__(self) -> LoopbackGuard:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()
