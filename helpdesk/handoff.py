"""A receipt handed straight to the delivery worker of this process, without the worker's claim.

When ``helpdesk run`` receives a message, its receipt is the answer the requester waits for. Queued the
ordinary way, it waits for the worker's claim (a statement, on SQLite a writer turn) after the intake's
commit. Instead, when a worker runs in the same process (``Desk.hand_off``, wired by
``helpdesk.service.connect``), the receipt's outbox row is written already leased to that worker (its
``locked_until`` and a fresh ``claim_token``) in the intake's own transaction, so no claim (this worker's or
another process's) can take it; the row's id comes back with its INSERT. The worker holds the item from
then on, in memory, unsent until the intake's transaction has ended: sent at once when it committed,
dropped when it rolled back (``Handing.settle``, called by the transaction's owner through
``handed_on_commit``). Nothing else changes: a crash or a stop after the commit leaves a leased row that any
worker claims once the lease runs out (a graceful stop releases what it did not send), a failed send goes
the worker's ordinary way, and the mark is the ordinary mark.

Whether a receipt may be handed is the worker's rule (``DeliveryWorker.hand_off``): it must not overtake an
older item for the same recipient. The intake's first read brings, per recipient, the ids of its unsent
items (``PENDING_TO``, read along by ``lone_read`` and ``read_ahead``; ``pending_ids``); a receipt whose
recipient was not read that way is queued as before. Only receipts written by one flush
(:mod:`helpdesk.usecases.one_flush`) in a transaction whose owner settles hand-overs are handed; every other
writer (CLI commands, staff replies, a desk with no worker in its process) writes rows as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final, Protocol

from sqlalchemy import Select, String, bindparam, cast, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from helpdesk.db.models import OutboxItem
from helpdesk.db.transaction_memo import transaction_values
from helpdesk.usecases import read_ahead  # a module: read_ahead reads this module's statements

_KEY = "handed_on_commit"
_QUEUED = "queued_to"
_outbox = OutboxItem.__table__

# A recipient with more unsent items than this is left to the claim (its fair share, not a hand-over).
PENDING_LOOKED_AT: Final = 8


def _pending_to(recipient: Any) -> Select[tuple[int]]:
    return (
        select(_outbox.c.id)
        .where(
            _outbox.c.status == "pending",
            _outbox.c.channel == bindparam("pending_channel"),
            _outbox.c.payload["recipient"].as_string() == recipient,
        )
        .order_by(_outbox.c.id)
        .limit(PENDING_LOOKED_AT + 1)
    )


# One recipient's unsent items (waiting, leased or being sent), up to one more than a hand-over looks at:
# as one text value of ids, a column beside a lone message's other first look-ups.
_PENDING_IDS = _pending_to(bindparam("pending_recipient")).subquery("pending")
PENDING_TO = (
    select(func.aggregate_strings(cast(_PENDING_IDS.c.id, String), ",")).select_from(_PENDING_IDS)
).scalar_subquery()
# Several recipients at once (a group's first look-ups): (recipient, id) rows, oldest first.
PENDING_TO_ANY = (
    select(_outbox.c.payload["recipient"].as_string(), _outbox.c.id)
    .where(
        _outbox.c.status == "pending",
        _outbox.c.channel == bindparam("pending_channel"),
        _outbox.c.payload["recipient"].as_string().in_(bindparam("pending_recipients", expanding=True)),
    )
    .order_by(_outbox.c.id)
)


def pending_ids(ids: str | Collection[int] | None) -> frozenset[int] | None:
    """The ids read, or None when there were more than a hand-over looks at."""
    if isinstance(ids, str):
        ids = [int(i) for i in ids.split(",")]
    found = frozenset(ids or ())
    return found if len(found) <= PENDING_LOOKED_AT else None


class Handing(Protocol):
    """One receipt on its way to the worker: the lease its row is written with, then the row's id."""

    locked_until: datetime
    claim_token: str

    def hold(
        self, item_id: int, channel: str, payload: dict[str, Any], ticket_id: int, message_id: int
    ) -> None:
        """The row is written (not committed): the worker holds it, unsent, ahead of newer items."""

    def settle(self, committed: bool) -> None:
        """The intake's transaction ended: send it now, or forget it."""


# The worker's rule (channel, recipient, the recipient's unsent items as the intake read them): a Handing,
# or None when the receipt must wait for a claim.
HandOff = Callable[[str, str, frozenset[int]], Handing | None]


class _Transaction:
    """What one transaction handed, and whether it queued anything else (which needs the worker's claim)."""

    def __init__(self) -> None:
        self.handed: list[Settles] = []  # receipts handed, and marks carried
        self.unhanded = False

    def flushed(self, session: Session, _context: object) -> None:
        # Rows added as ORM objects (a staff card, a notification) never pass ``lease_receipt``.
        if not self.unhanded and any(isinstance(row, OutboxItem) for row in session.new):
            self.unhanded = True


def lease_receipt(
    session: AsyncSession, hand_off: HandOff | None, channel: str, recipient: str
) -> Handing | None:
    """Whether an outbox row to ``recipient``, about to be written, is handed (see the module's note): called
    for every row the transaction queues (``hand_off`` None for all but a receipt written by one flush), so
    a receipt queued after another item to the same recipient in the same transaction is never handed
    ahead of it. A Handing is settled with the transaction."""
    values = transaction_values(session)
    queued: set[tuple[str, str]] = values.setdefault(_QUEUED, set())
    first = (channel, recipient) not in queued
    queued.add((channel, recipient))
    transaction: _Transaction | None = values.get(_KEY)
    handing = None
    if hand_off is not None and transaction is not None and first:
        pending = read_ahead.answered(session, "pending_outbox", (channel, recipient))
        if pending is not read_ahead.NOT_READ and pending is not None:
            handing = hand_off(channel, recipient, pending)
    if transaction is not None:
        if handing is None:
            transaction.unhanded = True
        else:
            transaction.handed.append(handing)
    return handing


class Settles(Protocol):
    def settle(self, committed: bool) -> None: ...


# The worker's marks of sends that may ride in an intake's transaction (SQLite: one writer turn and one commit
# for both; ``helpdesk/mark_carrier.py``): written in the session's transaction, settled with it.
CarryMarks = Callable[[AsyncSession], Awaitable[Settles | None]]


async def carry_marks(session: AsyncSession, carry: CarryMarks | None) -> None:
    """Let ``session``'s transaction, one ``handed_on_commit`` tracks, carry the worker's waiting marks."""
    transaction: _Transaction | None = transaction_values(session).get(_KEY)
    if carry is None or transaction is None:
        return
    carried = await carry(session)
    if carried is not None:
        transaction.handed.append(carried)


@asynccontextmanager
async def handed_on_commit(wake: Callable[[], None]) -> AsyncIterator[Callable[[AsyncSession], None]]:
    """Around a transaction whose receipts may be handed: yields ``track(session)``, to call once its
    transaction has begun. Every receipt handed in it is sent once the block ends without an error (the
    transaction committed inside it), and dropped otherwise; then ``wake`` is called only if the
    transaction queued a row that was not handed, which the worker must claim."""
    transaction = _Transaction()
    tracked: list[Session] = []

    def track(session: AsyncSession) -> None:
        transaction_values(session)[_KEY] = transaction
        tracked.append(session.sync_session)
        event.listen(session.sync_session, "after_flush", transaction.flushed)

    committed = False
    try:
        yield track
        committed = True
    finally:
        for session in tracked:
            event.remove(session, "after_flush", transaction.flushed)
        for handing in transaction.handed:
            handing.settle(committed)
    if transaction.unhanded:
        wake()
