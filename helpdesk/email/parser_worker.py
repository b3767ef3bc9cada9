"""The parser worker's main loop (``python -m helpdesk.email.parser_worker LIMIT_BYTES MODULE:FUNCTION PID``).

Reads ``(raw, options)`` requests from stdin as 8-byte big-endian length + pickle, answers
``("ok", InboundMessage)``, ``("error", exception)`` or ``("memory", None)`` the same way on stdout
(after one ``("ready", None)`` once it has started).
Only the service writes to its stdin, so unpickling what arrives there is safe.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import pickle
import resource
import signal
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

_PR_SET_PDEATHSIG = 1


def _load(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _answer(out: BinaryIO, status: str, value: object) -> None:
    try:
        data = pickle.dumps((status, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an unpicklable exception: its text is what matters
        data = pickle.dumps(("error", RuntimeError(f"{type(value).__name__}: {exc}")))
    out.write(len(data).to_bytes(8, "big") + data)
    out.flush()


def _die_with_the_service(service_pid: int) -> None:
    """Linux: be killed when the service dies, even mid-parse (a runaway must not outlive it)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)  # the running program, libc included
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # The service may be PID 1 (a container), so compare with its pid rather than with 1.
    if os.getppid() != service_pid:  # it died before prctl ran
        os._exit(0)


def main(argv: list[str]) -> int:
    limit, target, service_pid = int(argv[0]), argv[1], int(argv[2])
    _die_with_the_service(service_pid)
    # Past the limit allocations fail with MemoryError here, instead of the kernel's OOM killer choosing
    # a victim (possibly the service).
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    function = _load(target)
    requests = sys.stdin.buffer
    # The protocol owns the real stdout; a stray print from a library goes to stderr instead.
    answers = os.fdopen(os.dup(1), "wb")
    sys.stdout = sys.stderr
    _answer(answers, "ready", None)  # imports done: the time limit starts with the first request
    while True:
        header = requests.read(8)
        if len(header) < 8:
            return 0  # the service closed the pipe: it is done with us
        raw, options = pickle.loads(requests.read(int.from_bytes(header, "big")))
        try:
            _answer(answers, "ok", function(raw, **options))
        except MemoryError:
            raw = options = None
            _answer(answers, "memory", None)
        except Exception as exc:
            _answer(answers, "error", exc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
