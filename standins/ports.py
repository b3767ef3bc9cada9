"""Loopback ports for the stand-ins: a free one, and a server started on one while other processes pick
theirs.

A port found free is only free until it is bound. The suite's other worker picks its ports the same way, so
now and then it binds the one just picked first; the server then starts again on another. A port the caller
named (a server brought back on the port its clients know) is never swapped.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable

ATTEMPTS = 3


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (aiosmtpd's Controller and pymap cannot bind port 0 themselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def start_on_a_port(host: str, port: int | None, start: Callable[[int], Awaitable[None]]) -> int:
    """``start(p)`` on ``port`` when given, else on a free port, picked again while another process takes
    it first; the port it serves on."""
    for attempt in range(1 if port else ATTEMPTS):
        chosen = port or free_port(host)
        try:
            await start(chosen)
        except Exception as exc:
            if port or attempt == ATTEMPTS - 1 or not _taken(exc):
                raise
            continue
        return chosen
    raise AssertionError("unreachable: the last attempt returns or raises")


def _taken(exc: BaseException) -> bool:
    # aiosmtpd raises the OSError itself; pymap, a process of its own, says it on its way out.
    return getattr(exc, "errno", None) == errno.EADDRINUSE or "address already in use" in str(exc).lower()
