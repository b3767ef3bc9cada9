"""The ticket lifecycle: its statuses, the sets use-cases ask about, and every move between statuses.

    new ──assign──► open ◄──inbound── waiting, resolved, closed
     └──reply──► waiting ◄──reply── open
    staff may set open, waiting, resolved or closed from any other status

One table (``TRANSITIONS``) holds every allowed move; a move it does not hold raises ``InvalidTransition``
with a message fit to show staff. The statuses are stored as these same strings in the database.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol

from helpdesk.usecases.errors import InvalidTransition


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Move(StrEnum):
    INBOUND = "inbound"  # the requester (or a participant) wrote again
    REPLY = "reply"  # staff answered the requester
    ASSIGN = "assign"  # staff assigned (or unassigned) the ticket
    # Staff setting a status by hand (CLI, staff group buttons).
    SET_OPEN = "set open"
    SET_WAITING = "set waiting"
    RESOLVE = "resolve"
    CLOSE = "close"


# Still to be answered: listed as the requester's open requests, counted against the open-ticket cap and
# an expert's load, continued by a new message in the same chat.
ACTIVE: tuple[Status, ...] = (Status.NEW, Status.OPEN, Status.WAITING)
# A requester's message brings these back to open.
REOPENABLE: tuple[Status, ...] = (Status.RESOLVED, Status.CLOSED)
# What staff may set by hand ("new" is only ever where a ticket starts).
SETTABLE: tuple[Status, ...] = (Status.OPEN, Status.WAITING, Status.RESOLVED, Status.CLOSED)
INITIAL = Status.NEW

_SET_BY_HAND: dict[Status, Move] = {
    Status.OPEN: Move.SET_OPEN,
    Status.WAITING: Move.SET_WAITING,
    Status.RESOLVED: Move.RESOLVE,
    Status.CLOSED: Move.CLOSE,
}


def _table() -> dict[tuple[Move, Status], Status]:
    table: dict[tuple[Move, Status], Status] = {}
    for status in Status:
        table[Move.INBOUND, status] = Status.OPEN if status in (Status.WAITING, *REOPENABLE) else status
        if status is not Status.CLOSED:
            # A reply moves the ball to the requester; a resolved ticket stays resolved.
            table[Move.REPLY, status] = Status.WAITING if status in ACTIVE else status
            table[Move.ASSIGN, status] = Status.OPEN if status is Status.NEW else status
        for target, move in _SET_BY_HAND.items():
            if target is not status:
                table[move, status] = target
    return table


# (move, from) → to. Absent: refused.
TRANSITIONS: dict[tuple[Move, Status], Status] = _table()

_REFUSALS: dict[Move, str] = {
    Move.REPLY: "is closed; reopen it (set status open) to reply",
    Move.ASSIGN: "is closed",
}


class Lifecycled(Protocol):
    reference: str
    status: str
    resolved_at: datetime | None
    closed_at: datetime | None


def staff_move(status: str) -> Move:
    """The move of staff setting ``status`` by hand; an unknown or unsettable status is refused."""
    try:
        return _SET_BY_HAND[Status(status)]
    except (ValueError, KeyError):
        allowed = ", ".join(SETTABLE)
        raise InvalidTransition(f"unknown status {status!r}; choose one of {allowed}") from None


def next_status(ticket: Lifecycled, move: Move) -> Status:
    """Where ``move`` takes ``ticket``; raises ``InvalidTransition`` when the table refuses it."""
    current = Status(ticket.status)
    target = TRANSITIONS.get((move, current))
    if target is None:
        reason = _REFUSALS.get(move, f"is already {current}")
        raise InvalidTransition(f"{ticket.reference} {reason}")
    return target


def apply(ticket: Lifecycled, move: Move, now: datetime) -> Status | None:
    """Make ``move`` on ``ticket`` (status and the resolved/closed times); returns the previous status when
    the status changed, None when the move left it as it was."""
    previous = Status(ticket.status)
    target = next_status(ticket, move)
    if target is previous:
        return None
    if target in (Status.OPEN, Status.WAITING):
        ticket.resolved_at = None
        ticket.closed_at = None
    if target in REOPENABLE and ticket.resolved_at is None:
        ticket.resolved_at = now
    if target is Status.CLOSED:
        ticket.closed_at = now
    ticket.status = target.value
    return previous
