"""Fault injection: failures queued per method (``fail_next``), seeded random faults (``fail_randomly``)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from standins.telegram_api.wire import BotApiError

# What ``fail_randomly`` can do to a call: Telegram's flood control, a server error, an answer that
# comes too late, the connection dropped before the call is done, and the connection dropped after it
# was done (the client cannot tell it worked; a retry sends it again, as with the real Bot API).
FAULT_MODES = ("429", "500", "timeout", "drop", "drop_after")


@dataclass(slots=True)
class _Failure:
    code: int
    description: str
    retry_after: int | None
    parameters: Mapping[str, Any] | None
    remaining: int
    skip: int


@dataclass(slots=True)
class _RandomFaults:
    rate: float
    methods: frozenset[str]
    modes: tuple[str, ...]
    rng: random.Random
    delay: float
    retry_after: int
    injected: dict[str, int] = field(default_factory=dict)


class FaultPlan:
    """The faults still to inject; method names are lower-case (Telegram's are case-insensitive)."""

    def __init__(self) -> None:
        self._failures: dict[str, list[_Failure]] = {}
        self._random: _RandomFaults | None = None

    def fail_next(
        self,
        method: str,
        code: int,
        description: str,
        retry_after: int | None,
        *,
        times: int,
        after: int,
        parameters: Mapping[str, Any] | None,
    ) -> None:
        failure = _Failure(code, description, retry_after, parameters, times, after)
        self._failures.setdefault(method.lower(), []).append(failure)

    def fail_randomly(
        self,
        rate: float,
        *,
        methods: Iterable[str],
        modes: Iterable[str],
        seed: int,
        delay: float,
        retry_after: int,
    ) -> None:
        chosen = tuple(modes)
        unknown = set(chosen) - set(FAULT_MODES)
        if unknown or not chosen:
            raise ValueError(f"modes must be among {FAULT_MODES}, got {chosen}")
        if rate <= 0:
            self._random = None
            return
        self._random = _RandomFaults(
            rate=rate,
            methods=frozenset(m.lower() for m in methods),
            modes=chosen,
            rng=random.Random(seed),
            delay=delay,
            retry_after=retry_after,
        )

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._random.injected) if self._random is not None else {}

    @property
    def delay(self) -> float:
        """How long a "timeout" fault holds the answer back."""
        return self._random.delay if self._random is not None else 0

    @property
    def retry_after(self) -> int:
        return self._random.retry_after if self._random is not None else 1

    def take_failure(self, name: str) -> BotApiError | None:
        """The queued failure for this call to ``name``, if one is due."""
        queue = self._failures.get(name)
        if not queue:
            return None
        failure = queue[0]
        if failure.skip > 0:
            failure.skip -= 1
            return None
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.pop(0)
        return BotApiError(
            failure.code, failure.description, retry_after=failure.retry_after, parameters=failure.parameters
        )

    def random_fault(self, name: str) -> str | None:
        """The random fault mode drawn for this call to ``name``, or None to let it through."""
        faults = self._random
        if faults is None or name not in faults.methods or faults.rng.random() >= faults.rate:
            return None
        mode = faults.rng.choice(faults.modes)
        faults.injected[mode] = faults.injected.get(mode, 0) + 1
        return mode
