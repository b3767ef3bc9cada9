"""The ticket lifecycle's transition table: every allowed move, and the refused ones with their message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from helpdesk.lifecycle import ACTIVE, REOPENABLE, SETTABLE, TRANSITIONS, Move, Status, apply, staff_move
from helpdesk.usecases.errors import InvalidTransition

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EARLIER = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)

N, OP, W, R, C = Status.NEW, Status.OPEN, Status.WAITING, Status.RESOLVED, Status.CLOSED

# The whole table, written out by hand: (move, from) → to.
EXPECTED = {
    (Move.INBOUND, N): N,
    (Move.INBOUND, OP): OP,
    (Move.INBOUND, W): OP,
    (Move.INBOUND, R): OP,
    (Move.INBOUND, C): OP,
    (Move.REPLY, N): W,
    (Move.REPLY, OP): W,
    (Move.REPLY, W): W,
    (Move.REPLY, R): R,
    (Move.ASSIGN, N): OP,
    (Move.ASSIGN, OP): OP,
    (Move.ASSIGN, W): W,
    (Move.ASSIGN, R): R,
    **{(Move.SET_OPEN, s): OP for s in (N, W, R, C)},
    **{(Move.SET_WAITING, s): W for s in (N, OP, R, C)},
    **{(Move.RESOLVE, s): R for s in (N, OP, W, C)},
    **{(Move.CLOSE, s): C for s in (N, OP, W, R)},
}


@dataclass
class FakeTicket:
    status: str
    reference: str = "TSCC-2026-0042"
    resolved_at: datetime | None = None
    closed_at: datetime | None = None


def test_the_table_is_exactly_the_documented_one() -> None:
    assert TRANSITIONS == EXPECTED


def test_sets() -> None:
    assert ACTIVE == (N, OP, W) and REOPENABLE == (R, C) and SETTABLE == (OP, W, R, C)
    # Stored as the same strings as before.
    assert [s.value for s in Status] == ["new", "open", "waiting", "resolved", "closed"]


@pytest.mark.parametrize(("move", "start"), sorted(EXPECTED, key=str))
def test_every_allowed_move(move: Move, start: Status) -> None:
    ticket = FakeTicket(start, resolved_at=EARLIER if start in REOPENABLE else None)
    ticket.closed_at = EARLIER if start is C else None
    previous = apply(ticket, move, NOW)
    target = EXPECTED[move, start]
    assert ticket.status == target
    assert previous == (None if target is start else start)
    if target in (OP, W):
        assert ticket.resolved_at is None and ticket.closed_at is None
    if target is R:
        assert ticket.resolved_at is not None
    if target is C:
        assert ticket.closed_at == NOW and ticket.resolved_at == (EARLIER if start is R else NOW)


@pytest.mark.parametrize(
    ("move", "start", "message"),
    [
        (Move.REPLY, C, "TSCC-2026-0042 is closed; reopen it (set status open) to reply"),
        (Move.ASSIGN, C, "TSCC-2026-0042 is closed"),
        (Move.CLOSE, C, "TSCC-2026-0042 is already closed"),
        (Move.SET_OPEN, OP, "TSCC-2026-0042 is already open"),
        (Move.RESOLVE, R, "TSCC-2026-0042 is already resolved"),
    ],
)
def test_refused_moves_say_why_and_change_nothing(move: Move, start: Status, message: str) -> None:
    ticket = FakeTicket(start, closed_at=EARLIER if start is C else None)
    with pytest.raises(InvalidTransition) as refused:
        apply(ticket, move, NOW)
    assert str(refused.value) == message
    assert ticket.status == start and ticket.closed_at == (EARLIER if start is C else None)


@pytest.mark.parametrize("status", ["new", "pending", ""])
def test_staff_may_not_set_new_or_an_unknown_status(status: str) -> None:
    with pytest.raises(InvalidTransition, match="choose one of open, waiting, resolved, closed"):
        staff_move(status)
