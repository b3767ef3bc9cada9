"""One flush for a group's messages: what each one adds is written together, unless a later one must see it.

A Telegram group commit or a mail batch receives many messages in one transaction. Flushed one by one, each
message costs an INSERT per table (message, audit, outbox, receipt counts) and a pass of the ORM's unit of
work; held back and flushed together, the group costs one INSERT per table (on PostgreSQL one batched
``INSERT … RETURNING``). What follows a message once its rows have ids (its staff card, the staff
notifications, a requester's consent) runs for all of them after that flush; such a step may read for all
of that flush's tickets at once (``written_together``: the staff cards' queues, one statement per flush).

Rows held back are invisible to SQL, so a message that could read what an earlier one of the group wrote
is taken only after that is written: one with the same channel id, the same sender (address, Telegram user
or chat), a reply to one of them, a sender one of them copied in (a participant now), or one whose
candidate tickets include a ticket one of them changed (``before_touching``, called where threading has
found its candidates). Any other message's reads (its duplicate check, requester, thread, receipt and mail
limits, card queue) are about rows under its own keys, which no held-back message wrote. A ticket opened by
a held-back message is reachable only under its sender's keys: nobody has its reference yet.

Rows nothing reads back in the group's transaction (audit events, a receipt's outbox item) are not ORM
objects there: they are held as plain rows (``hold``) and inserted after each flush, one Core INSERT per
table, taking the ids of the rows they link to (tickets, messages) once those are written. The unit of work
does not sort, link and track them, and on SQLite, where the ORM inserts a table's rows one by one (but for
messages, which carry an insert sentinel), they are one executemany.

The group lives only in a run without savepoints: once a member fails, the group runs again with a
SAVEPOINT each and every message flushed on its own, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from functools import cache
from typing import Any

from sqlalchemy import Insert, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Base, Message, Ticket
from helpdesk.db.transaction_memo import transaction_values
from helpdesk.messages import InboundMessage

_KEY = "one_flush"

Key = tuple[str, Any]
AfterWritten = Callable[[], Awaitable[None]]
# (a column whose value is the row's alone, what gets the row's id once it is inserted)
Written = tuple[str, Callable[[int], None]]
_Held = tuple[dict[str, Any], dict[str, Ticket | Message], Written | None]


class OneFlush:
    """The messages of one transaction whose rows wait for the group's flush."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._after: list[tuple[Ticket, AfterWritten]] = []
        self._held: dict[type[Base], list[_Held]] = {}
        # The tickets whose steps run in the current write, ids known: what a step may read for all of them
        # at once (a new list each write, so nothing read for one write is taken for the next).
        self.written: list[Ticket] = []
        self._keys: set[Key] = set()
        self._tickets: set[int] = set()
        self.writes = 0  # flushes of held-back rows: how well the group held together
        transaction_values(session)[_KEY] = self

    async def before(self, inbound: InboundMessage) -> None:
        """Write what is held back first when ``inbound`` could read it."""
        if self._keys and not self._keys.isdisjoint(_reads(inbound)):
            await self.write()

    def taken(self, inbound: InboundMessage, ticket: Ticket | None = None) -> None:
        """``inbound`` was taken (whatever it left held back, the keys it wrote under are remembered)."""
        self._keys.update(_writes(inbound))
        if ticket is not None and ticket.id is not None:
            self._tickets.add(ticket.id)

    def later(self, ticket: Ticket, after_written: AfterWritten) -> None:
        """Run ``after_written`` once the group's rows have their ids."""
        if ticket.id is not None:
            self._tickets.add(ticket.id)
        self._after.append((ticket, after_written))

    def hold(
        self,
        model: type[Base],
        row: dict[str, Any],
        *,
        written: Written | None = None,
        **links: Ticket | Message,
    ) -> None:
        """Hold a row of ``model`` for the group's next flush; each of ``links`` names a column and the row
        whose id it takes, read then. Rows of a table are inserted in the order they were held. ``written``
        (a column whose value is this row's alone, and a callback) gets the row's id, returned by the INSERT
        itself and known by that value (a handed receipt, :mod:`helpdesk.handoff`)."""
        self._held.setdefault(model, []).append((row, links, written))

    async def touching(self, tickets: Iterable[Ticket]) -> None:
        if any(ticket.id in self._tickets for ticket in tickets):
            await self.write()

    async def write(self) -> None:
        """Flush what is held back, run what waited for its ids, and flush what that added."""
        if not (self._after or self._keys or self._held or self._session.new or self._session.dirty):
            return
        self.writes += 1
        await self._flush()
        after, self._after = self._after, []
        self.written = [ticket for ticket, _ in after]
        for _, step in after:
            await step()
        self.written = []
        await self._flush()
        self._keys.clear()
        self._tickets.clear()

    async def _flush(self) -> None:
        await self._session.flush()
        held, self._held = self._held, {}
        for model, rows in held.items():
            values = [row | {column: linked.id for column, linked in links.items()} for row, links, _ in rows]
            table = model.__table__
            wanted = {written[0] for *_, written in rows if written is not None}
            if not wanted:
                await self._session.execute(insert(table), values)
                continue
            # Still one statement: INSERT … VALUES (…), (…) RETURNING id, each id known by the row's own
            # value (asking for the rows' order instead would insert them one by one on SQLite).
            [column] = wanted
            returned = await self._session.execute(_inserting_ids(table, column), values)
            ids = {value: row_id for row_id, value in returned}
            for row, _, written in rows:
                if written is not None:
                    written[1](ids[row[column]])


@cache
def _inserting_ids(table: Table, column: str) -> Insert:
    return insert(table).returning(table.c.id, table.c[column])


def current(session: AsyncSession) -> OneFlush | None:
    """The group of ``session``'s transaction, if its messages are written by one flush."""
    group = transaction_values(session).get(_KEY)
    return group if isinstance(group, OneFlush) else None


def written_together(session: AsyncSession) -> list[Ticket]:
    """The tickets whose after-written steps run now in ``session``'s group (empty outside one)."""
    group = current(session)
    return group.written if group is not None else []


async def before_touching(session: AsyncSession, tickets: Iterable[Ticket]) -> None:
    """Called where receiving has found the tickets a message may join: held-back rows on them are written
    first, so the message reads them (participants, receipts, status) as they are."""
    group = current(session)
    if group is not None:
        await group.touching(tickets)


def _sender_keys(inbound: InboundMessage) -> set[Key]:
    sender = inbound.sender
    keys: set[Key] = {("id", (inbound.channel, inbound.channel_message_id))}
    if sender.email:
        keys.add(("address", sender.email.lower()))
    if sender.telegram_user_id is not None:
        keys.add(("telegram_user", sender.telegram_user_id))
    if sender.telegram_chat_id is not None:
        keys.add(("telegram_chat", sender.telegram_chat_id))
    return keys


def _reads(inbound: InboundMessage) -> set[Key]:
    return _sender_keys(inbound) | {("id", (inbound.channel, reply)) for reply in inbound.replies_to}


def _writes(inbound: InboundMessage) -> set[Key]:
    return _sender_keys(inbound) | {("address", address.lower()) for address in inbound.cc}
