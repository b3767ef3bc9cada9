"""Failed sign-ins counted per account and per address: over the limit, even the right password waits.

Kept in memory: one `helpdesk run` serves the workspace, and a restart forgetting the counts costs an
attacker a restart they cannot cause. Behind a reverse proxy on the same host uvicorn takes the address
from X-Forwarded-For (it trusts only 127.0.0.1 for that).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable

WINDOW_SECONDS = 15 * 60
# Failures within the window before sign-in is refused: one person mistyping, versus one office's address.
PER_ACCOUNT = 5
PER_ADDRESS = 20
_MAX_KEYS = 100_000  # a spray over made-up addresses must not grow memory without bound


class LoginLimits:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> int:
        failures = self._failures.get(key)
        if not failures:
            return 0
        cutoff = self._clock() - WINDOW_SECONDS
        while failures and failures[0] < cutoff:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return len(failures)

    def allowed(self, account: str, address: str) -> bool:
        return (
            self._recent(f"account:{account}") < PER_ACCOUNT
            and self._recent(f"address:{address}") < PER_ADDRESS
        )

    def failed(self, account: str, address: str) -> None:
        if len(self._failures) > _MAX_KEYS:
            self._failures.clear()
        now = self._clock()
        self._failures[f"account:{account}"].append(now)
        self._failures[f"address:{address}"].append(now)

    def succeeded(self, account: str) -> None:
        self._failures.pop(f"account:{account}", None)
