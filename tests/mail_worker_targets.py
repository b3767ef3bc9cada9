"""A stand-in for the parser inside the parser worker (``GuardedParser(target=...)``), for the limit tests.

It runs in the worker process, never in the test process. Mail carrying ``X-Misbehave: greedy`` allocates
until the worker's RLIMIT_AS says no, ``killed`` dies as the kernel's OOM killer would kill it, ``slow``
overruns the time limit; any other mail is parsed by the real parser, so one worker serves both.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from helpdesk.email.parse import parse_email

TARGET = "mail_worker_targets:misbehaving"


def misbehaving(raw: bytes, **options: Any) -> Any:
    if b"X-Misbehave: greedy" in raw:
        hoard = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))
    if b"X-Misbehave: killed" in raw:
        os.kill(os.getpid(), signal.SIGKILL)
    if b"X-Misbehave: slow" in raw:
        time.sleep(3600)
    return parse_email(raw, **options)
