"""The delivery worker: sends what the outbox holds, with retries, back-off and a record of failures.

At-least-once: an item is claimed with a lease, sent, then marked sent. A crash after sending and before
marking means it is sent again once the lease runs out; a crash before sending loses nothing.

Batches: one statement claims up to ``batch_size`` due items; sends that finish together are marked sent
together (group commit), and a sending slot is released only once its item is marked, so at most
``concurrency`` items are ever sent and not yet marked. A receipt may also reach the worker without a claim,
handed over by the intake of this process (:mod:`helpdesk.handoff`; the rule is ``hand_off``): the worker
holds every item, claimed or handed, in one queue per recipient, by id, until it is marked, failed or
released, and sends each recipient's items one at a time in that order.

Each write is one statement on PostgreSQL, run in autocommit, and a transaction on SQLite (``_writing``).
Lock order, the same in every statement and transaction that takes several rows here: outbox rows by id,
then messages by id (``_MARK_SENT`` says how its one statement keeps it); a ticket (a card's Telegram id,
the first time it is posted) is updated on its own, holding nothing else. Receiving, which holds several
tickets at once in a group commit, only inserts outbox rows and never waits on one this worker holds, so the
two can never wait on each other in a circle (``tests/test_delivery_batches.py``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from bisect import insort
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, bindparam, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from helpdesk.db.models import AuditEvent, Message, OutboxItem, Ticket
from helpdesk.db.types import utcnow
from helpdesk.db.writer_turns import writer_turn
from helpdesk.delivery import ChannelSender, DeliveryError
from helpdesk.flood import FloodLimits
from helpdesk.group_commit import GroupCommit
from helpdesk.handoff import CarryMarks
from helpdesk.mark_carrier import MarkCarrier
from helpdesk.messages import OutboundMessage
from helpdesk.usecases.cards import card_outbound

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox item as the claim returned it: what sending and marking it need."""

    id: int
    channel: str
    payload: dict[str, Any]
    attempts: int
    ticket_id: int | None
    message_id: int | None


_outbox = OutboxItem.__table__
_tickets = Ticket.__table__


def claim_statement(channels: Sequence[str], per_recipient: int, batch_size: int) -> Update:
    """The claim of up to ``batch_size`` due items on ``channels``; built once per worker, its values bound
    per call (``now``, ``until``, ``token``), so a claim does not build and key a statement each time."""
    now = bindparam("now")
    due_now = (
        _outbox.c.status == "pending",
        # Equalities, not IN: an IN of a list is rewritten into the SQL on every execution.
        or_(*(_outbox.c.channel == channel for channel in channels)),
        _outbox.c.next_attempt_at <= now,
        or_(_outbox.c.locked_until.is_(None), _outbox.c.locked_until < now),
    )
    # Fairness: at most a few items per recipient in one batch (oldest first, so each recipient's order
    # holds), or a chat with a thousand queued items would fill batch after batch while another chat's
    # receipt waits behind them.
    ranked = (
        select(
            _outbox.c.id,
            func.row_number()
            .over(
                partition_by=(_outbox.c.channel, _outbox.c.payload["recipient"].as_string()),
                order_by=_outbox.c.id,
            )
            .label("rank"),
        )
        .where(*due_now)
        .subquery()
    )
    due = (
        select(_outbox.c.id)
        .where(_outbox.c.id.in_(select(ranked.c.id).where(ranked.c.rank <= per_recipient)))
        .order_by(_outbox.c.id)
        .limit(batch_size)
        # Rows locked in id order; several workers on PostgreSQL each take different rows instead of
        # queueing behind a lock.
        .with_for_update(skip_locked=True)
    )
    return (
        update(_outbox)
        .where(
            _outbox.c.id.in_(due),
            # SQLite has no row locks: the lease itself keeps a second worker off these rows.
            or_(_outbox.c.locked_until.is_(None), _outbox.c.locked_until < now),
        )
        .values(locked_until=bindparam("until"), claim_token=bindparam("token"))
        .returning(*(_outbox.c[name] for name in Claimed.__dataclass_fields__))
    )


_MARK_OUTBOX = (
    update(_outbox)
    .where(_outbox.c.id == bindparam("item_id"))
    .values(
        status="sent",
        sent_at=bindparam("now"),
        sent_id=bindparam("sent"),
        attempts=bindparam("tries"),
        locked_until=None,
        last_error=None,
    )
)
_MARK_MESSAGES = (
    update(Message.__table__)
    .where(Message.__table__.c.id == bindparam("row_id"), Message.__table__.c.channel_message_id.is_(None))
    .values(channel_message_id=bindparam("sent"))
)
# PostgreSQL: a batch of sends marked in one statement, outbox rows then messages, each by id. The rows of
# both tables are locked by a SELECT … ORDER BY id FOR UPDATE (rows are locked as the sort hands them
# out, whatever plan the join takes), and the messages only once every outbox row is marked: the count
# over ``marked`` is a one-time filter on the messages' scan, and an aggregate reads all of its input.
_MARK_SENT = text(
    """
WITH locked AS (
    SELECT id FROM outbox WHERE id = ANY(CAST(:ids AS INTEGER[])) ORDER BY id FOR UPDATE
), marked AS (
    UPDATE outbox
    SET status = 'sent', sent_at = :now, sent_id = v.sent_id, attempts = v.attempts,
        locked_until = NULL, last_error = NULL
    FROM locked
    JOIN unnest(CAST(:ids AS INTEGER[]), CAST(:sent AS VARCHAR[]), CAST(:tries AS INTEGER[]))
        AS v (id, sent_id, attempts) ON v.id = locked.id
    WHERE outbox.id = locked.id AND outbox.id = ANY(CAST(:ids AS INTEGER[]))
    RETURNING outbox.id
), named AS (
    SELECT messages.id, n.sent_id
    FROM messages
    JOIN unnest(CAST(:rows AS INTEGER[]), CAST(:names AS VARCHAR[])) AS n (id, sent_id) ON n.id = messages.id
    WHERE messages.id = ANY(CAST(:rows AS INTEGER[])) AND messages.channel_message_id IS NULL
        AND (SELECT count(*) FROM marked) >= 0
    ORDER BY messages.id
    FOR UPDATE OF messages
)
UPDATE messages SET channel_message_id = named.sent_id FROM named WHERE messages.id = named.id
"""
)


@dataclass(frozen=True, slots=True)
class _Sent:
    item: Claimed
    sent_id: str | None
    # (ticket id, Telegram message id) of a card posted rather than edited: kept on the ticket.
    posted_card: tuple[int, int] | None = None


_RELEASE = (
    update(_outbox)
    .where(_outbox.c.id == bindparam("item_id"), _outbox.c.claim_token == bindparam("token"))
    .values(locked_until=None, claim_token=None)
)

Recipient = tuple[str, str]  # (channel, recipient)


@dataclass(eq=False)
class _Held:
    """An item the worker holds until it is marked sent, failed or released."""

    item: Claimed
    token: str
    # Claimed items may be sent at once; a handed one only once its intake's transaction has committed.
    ready: bool
    # Handed by the intake (a receipt): on SQLite its mark may ride in the next intake's transaction. A
    # claimed item (a staff reply, a card) is marked at once: the workspace shows it sent as soon as it is.
    handed: bool = False
    # Set on every change a waiting drain must see (ready, dropped, stopping).
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # For deliver_due: when it has been dealt with (sent and marked, failed, or released).
    done: asyncio.Future[None] | None = None


@dataclass(eq=False)
class _Handing:
    """A receipt on its way from the intake (``helpdesk.handoff.Handing``)."""

    worker: DeliveryWorker
    locked_until: datetime
    claim_token: str
    held: _Held | None = None

    def hold(
        self, item_id: int, channel: str, payload: dict[str, Any], ticket_id: int, message_id: int
    ) -> None:
        item = Claimed(item_id, channel, payload, 0, ticket_id, message_id)
        self.held = self.worker._hold(item, self.claim_token, ready=False, handed=True)

    def settle(self, committed: bool) -> None:
        if self.held is not None:
            self.worker._settle(self.held, committed)


# How many ids of items marked sent the worker remembers for the hand-over's rule.
_SENT_REMEMBERED = 4096


async def _mark_in(
    connection: AsyncConnection | AsyncSession, ordered: Sequence[_Sent], now: datetime
) -> None:
    """SQLite: a batch of sends marked by two statements (outbox rows, then the messages' Telegram ids) in
    the caller's transaction: the worker's own, or an intake's that carries them."""
    await connection.execute(
        _MARK_OUTBOX,
        [
            {"item_id": s.item.id, "now": now, "sent": s.sent_id, "tries": s.item.attempts + 1}
            for s in ordered
        ],
    )
    named = _named(ordered)
    if named:
        await connection.execute(
            _MARK_MESSAGES, [{"row_id": row_id, "sent": sent_id} for row_id, sent_id in named]
        )


def _named(ordered: Sequence[_Sent]) -> list[tuple[int, str]]:
    """(message row, Telegram id) of the sends whose message row must learn its id, by row id. Telegram ids
    exist only once sent; they let a reply to our message find its ticket. A mail sent under the Message-ID
    it was queued with has it on its row already (``enqueue``): no statement."""
    return sorted(
        (s.item.message_id, s.sent_id)
        for s in ordered
        if s.sent_id and s.item.message_id is not None and s.sent_id != s.item.payload.get("message_id")
    )


def _delivered(ordered: Sequence[_Sent]) -> None:
    for sent in ordered:
        log.info("delivered outbox item %s on %s", sent.item.id, sent.item.channel)


@dataclass(eq=False)
class _Carried:
    """Marks an intake's transaction carries (``DeliveryWorker.carry_marks``), settled with it."""

    carrier: MarkCarrier[_Sent]
    taken: list[tuple[_Sent, asyncio.Future[None]]]

    def settle(self, committed: bool) -> None:
        self.carrier.carried(self.taken, committed)
        if committed:
            _delivered([mark for mark, _ in self.taken])


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 5.0
    max_delay: float = 3600.0
    lease: float = 120.0

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        backoff = min(self.max_delay, self.base_delay * 2 ** max(0, attempts - 1))
        return max(backoff, retry_after or 0.0)


class DeliveryWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        senders: Mapping[str, ChannelSender],
        *,
        policy: RetryPolicy | None = None,
        batch_size: int = 50,
        concurrency: int = 8,
        poll_interval: float = 2.0,
        on_give_up: Callable[[AsyncSession, int], Awaitable[None]] | None = None,
        per_recipient: int = FloodLimits().outbox_per_recipient,
    ) -> None:
        self._sessions = sessions
        self._senders = dict(senders)
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._per_recipient = per_recipient
        self._wake = asyncio.Event()
        # Whether the last claim may have left due items unclaimed (a full batch, or a recipient held to its
        # share by the fairness rule).
        self._more_due = False
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._postgresql = self._engine.dialect.name == "postgresql"
        self._autocommit = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._claim_statement = (
            claim_statement(list(self._senders), per_recipient, batch_size) if self._senders else None
        )
        # Called in the transaction that records a message as undeliverable (e.g. to refresh the staff card).
        self.on_give_up = on_give_up
        # At most ``concurrency`` items sent and not yet marked, claimed and handed alike.
        self._slots = asyncio.Semaphore(concurrency)
        self._marks: GroupCommit[_Sent, None] = GroupCommit(lambda batch: self._mark_sent(batch))
        # SQLite inside ``helpdesk run``: marks the intake may carry (``ride_marks``).
        self._carrier: MarkCarrier[_Sent] | None = None
        # Per recipient: the items held and not yet started, by id, and its drain while it has any.
        self._queues: dict[Recipient, list[_Held]] = {}
        self._drains: dict[Recipient, asyncio.Task[None]] = {}
        # Per recipient: the ids held, from taken until marked, failed or released.
        self._holding: dict[Recipient, set[int]] = {}
        self._sent_lately: OrderedDict[int, None] = OrderedDict()
        self._stopping = False
        self._releases: set[asyncio.Task[None]] = set()
        self._claim_token = ""  # the last claim's, which its items carry

    def wake(self) -> None:
        """Something was queued: look now instead of at the next poll."""
        self._wake.set()

    def hand_off(self, channel: str, recipient: str, pending: frozenset[int]) -> _Handing | None:
        """The hand-over's rule, the one place it is decided: a receipt to ``recipient`` is handed to this
        worker (its row written leased to it) only when every unsent item for that recipient the intake's
        read saw (``pending``) is one this worker holds now (it queues the receipt behind them, by id) or
        has marked sent since; anything else (an item waiting for a claim, in back-off, or held by another
        process) and the receipt is queued for the claim as before, behind it. Never while stopping."""
        if self._stopping or channel not in self._senders:
            return None
        holding = self._holding.get((channel, recipient), ())
        if any(item_id not in holding and item_id not in self._sent_lately for item_id in pending):
            return None
        until = utcnow() + timedelta(seconds=self._policy.lease)
        return _Handing(self, until, secrets.token_hex(16))

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._run(stop)
        finally:
            await self.close()

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                while not stop.is_set():
                    # Cleared before each round, not after: a wake that comes while a round claims would
                    # otherwise be wiped out and its item would wait for the next poll.
                    self._wake.clear()
                    # Another round at once only when this one may have left due items behind; otherwise a
                    # claim that finds nothing would cost a transaction per delivered batch (a lone message
                    # paid it while the next one was being received). A wake during the round still counts:
                    # the event stays set and the wait below returns at once.
                    if not await self.deliver_due() or not self._more_due:
                        break
            except Exception:
                # A database hiccup must not end delivery for good; the next round tries again.
                log.exception("delivery round failed")
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            _, pending = await asyncio.wait(
                waiters, timeout=self._poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()

    async def deliver_due(self) -> int:
        """Claim and send one batch of due items; returns how many were claimed.

        Different recipients are served concurrently (one slow chat or mail server must not hold up the
        rest); one recipient's messages go in order, as they were queued.
        """
        items = await self._claim()
        per_recipient: dict[Recipient, int] = {}
        for item in items:
            key = _recipient(item)
            per_recipient[key] = per_recipient.get(key, 0) + 1
        self._more_due = len(items) >= self._batch_size or any(
            count >= self._per_recipient for count in per_recipient.values()
        )
        token = self._claim_token
        held = [self._hold(item, token, ready=True, awaited=True) for item in items]
        await asyncio.gather(*(entry.done for entry in held if entry.done is not None))
        return len(items)

    async def _claim(self) -> list[Claimed]:
        if self._claim_statement is None:
            return []
        now = utcnow()
        self._claim_token = secrets.token_hex(16)
        values = {
            "now": now,
            "until": now + timedelta(seconds=self._policy.lease),
            "token": self._claim_token,
        }
        # One UPDATE (its rows locked while it runs, the leases committed when it ends), no ORM session: the
        # rows come back as they are.
        async with self._writing() as connection:
            rows = await connection.execute(self._claim_statement, values)
        return sorted((Claimed(*row) for row in rows), key=lambda item: item.id)

    def _hold(
        self, item: Claimed, token: str, *, ready: bool, awaited: bool = False, handed: bool = False
    ) -> _Held:
        """Hold ``item`` in its recipient's queue, by id, behind nothing newer; its drain sends it."""
        entry = _Held(item, token, ready, handed=handed)
        if awaited:
            entry.done = asyncio.get_running_loop().create_future()
        key = _recipient(item)
        if item.id in self._holding.get(key, ()):
            # Claimed again once its lease ran out while held here (a send slower than the lease): one send.
            if entry.done is not None:
                entry.done.set_result(None)
            return entry
        queue = self._queues.setdefault(key, [])
        insort(queue, entry, key=lambda held: held.item.id)
        if len(queue) > 1 and queue[0] is entry:
            queue[1].changed.set()  # a drain waiting on the old head looks at the new one
        self._holding.setdefault(key, set()).add(item.id)
        if key not in self._drains:
            self._drains[key] = asyncio.create_task(self._drain(key), name=f"delivery {key[0]}")
        return entry

    def _settle(self, entry: _Held, committed: bool) -> None:
        """A handed item's intake transaction ended: it may be sent now, or it was never written."""
        queue = self._queues.get(_recipient(entry.item), [])
        if committed and not self._stopping and entry in queue:
            entry.ready = True
            entry.changed.set()
            return
        self._let_go(entry, queue)
        if committed:
            # Committed while the worker stops: its lease is released rather than waited out.
            task = asyncio.get_running_loop().create_task(self._release([entry]))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    def _let_go(self, entry: _Held, queue: list[_Held] | None = None) -> None:
        if queue is not None and entry in queue:
            queue.remove(entry)
        key = _recipient(entry.item)
        holding = self._holding.get(key)
        if holding is not None:
            holding.discard(entry.item.id)
            if not holding:
                del self._holding[key]
        if entry.done is not None and not entry.done.done():
            entry.done.set_result(None)
        entry.changed.set()

    async def _drain(self, key: Recipient) -> None:
        """Send one recipient's held items one at a time, oldest first; ends when none is left."""
        queue = self._queues[key]
        try:
            while queue and not self._stopping:
                head = queue[0]
                if not head.ready:
                    head.changed.clear()
                    await head.changed.wait()  # its intake commits, rolls back, or the worker stops
                    continue
                queue.pop(0)
                try:
                    await self._send(head)
                except Exception:
                    # Left leased: taken again once the lease runs out, as after a failed round.
                    log.exception("delivery of outbox item %s failed", head.item.id)
                finally:
                    self._let_go(head)
        finally:
            del self._drains[key]
            if not queue:
                self._queues.pop(key, None)

    async def _send(self, entry: _Held) -> None:
        async with self._slots:
            sent = await self._deliver(entry.item)
            if sent is None:
                return
            if self._carrier is not None and entry.handed:
                await self._carrier.submit(sent)
            else:
                await self._marks.submit(sent)
        self._sent_lately[entry.item.id] = None
        if len(self._sent_lately) > _SENT_REMEMBERED:
            self._sent_lately.popitem(last=False)

    async def close(self) -> None:
        """Stop: finish the sends under way; release the lease of every item held and not yet started
        (claimed or handed), so a restart or another worker takes it at once instead of after the lease."""
        self._stopping = True
        left = [entry for queue in self._queues.values() for entry in queue]
        for entry in left:
            self._let_go(entry, self._queues.get(_recipient(entry.item)))
        if self._carrier is not None:
            # The sends under way wait for their marks, and no intake carries them now.
            await self._carrier.flush()
        await asyncio.gather(*self._drains.values(), return_exceptions=True)
        committed = [entry for entry in left if entry.ready]
        if committed:
            try:
                await self._release(committed)
            except Exception:
                log.exception(
                    "could not release %s outbox leases; they run out by themselves", len(committed)
                )
        await asyncio.gather(*self._releases, return_exceptions=True)

    async def _release(self, entries: Sequence[_Held]) -> None:
        async with self._writing() as connection:
            await connection.execute(
                _RELEASE, [{"item_id": entry.item.id, "token": entry.token} for entry in entries]
            )

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """Where the worker writes its claims and marks. PostgreSQL: a connection in autocommit, each of
        them being one statement, atomic by itself: one round trip instead of three (BEGIN, statement,
        COMMIT) on the path of every receipt. SQLite: a transaction in this process's writer turn (one
        fsync for the rows it writes)."""
        if self._postgresql:
            async with self._autocommit.connect() as connection:
                yield connection
        else:
            async with writer_turn(self._sessions), self._engine.begin() as connection:
                yield connection

    async def _deliver(self, item: Claimed) -> _Sent | None:
        """Send ``item``; what to mark sent, or None when the failure has been recorded."""
        sender = self._senders[item.channel]
        outbound = OutboundMessage.from_json(item.payload)
        card_ticket_id = outbound.extra.get("card_ticket_id")
        if card_ticket_id is not None:
            outbound = await self._card_target(outbound, card_ticket_id)
        try:
            sent_id = await sender.send(outbound)
        except DeliveryError as exc:
            await self._failed(item, exc)
            return None
        except Exception as exc:
            # An unexpected error in a sender is treated as temporary, and said loudly.
            log.exception("sender for %s raised unexpectedly on outbox item %s", item.channel, item.id)
            await self._failed(item, DeliveryError(f"{type(exc).__name__}: {exc}"))
            return None
        posted = None
        if card_ticket_id is not None and sent_id:
            # A new card, or one posted anew because the old one was gone: the ticket must point at it.
            new_id = int(sent_id.rpartition(":")[2])
            posted = (card_ticket_id, new_id) if new_id != outbound.extra.get("edit_message_id") else None
        return _Sent(item, sent_id, posted)

    async def _card_target(self, outbound: OutboundMessage, ticket_id: int) -> OutboundMessage:
        """A staff card, drawn now from the ticket as it is; edited in place once it has been posted."""
        async with self._sessions() as session:
            # Its requester in the same round trip: the card names them.
            ticket = await session.get(Ticket, ticket_id, options=[joinedload(Ticket.requester)])
            if ticket is None:
                return outbound
            card = await card_outbound(
                session, ticket, int(outbound.recipient), ticket_url=outbound.extra.get("ticket_url")
            )
        if ticket.telegram_card_message_id is None:
            return card
        return replace(card, extra={**card.extra, "edit_message_id": ticket.telegram_card_message_id})

    async def _mark_sent(self, batch: list[_Sent]) -> list[None]:
        """Record a batch of sends: one statement (PostgreSQL) or transaction (SQLite), in the lock order."""
        now = utcnow()
        for ticket_id, card in sorted(s.posted_card for s in batch if s.posted_card):
            # Before the item is marked: a crash in between re-sends the card as an edit of this one.
            async with self._writing() as connection:
                await connection.execute(
                    update(_tickets).where(_tickets.c.id == ticket_id).values(telegram_card_message_id=card)
                )
        ordered = sorted(batch, key=lambda s: s.item.id)
        async with self._writing() as connection:
            if self._postgresql:
                named = _named(ordered)
                # One statement instead of two between BEGIN and COMMIT, in the same lock order (see
                # ``_MARK_SENT``).
                await connection.execute(
                    _MARK_SENT,
                    {
                        "now": now,
                        "ids": [s.item.id for s in ordered],
                        "sent": [s.sent_id for s in ordered],
                        "tries": [s.item.attempts + 1 for s in ordered],
                        "rows": [row_id for row_id, _ in named],
                        "names": [sent_id for _, sent_id in named],
                    },
                )
            else:
                await _mark_in(connection, ordered, now)
        _delivered(ordered)
        return [None] * len(batch)

    def ride_marks(self, *, within: float = 0.5) -> CarryMarks | None:
        """SQLite: let the intake of this process carry the marks of sends (``helpdesk/mark_carrier.py``);
        what the desk calls for it (``Desk.carry_marks``). None on PostgreSQL, which marks in autocommit."""
        if self._postgresql:
            return None
        # Marks holding every slot are written at once: nothing else could be sent until they are.
        self._carrier = MarkCarrier(self._mark_sent, within=within, full=self._concurrency)
        return self.carry_marks

    async def carry_marks(self, session: AsyncSession) -> _Carried | None:
        """Write the marks waiting now in ``session``'s transaction; settled with it."""
        if self._carrier is None:
            return None
        taken = self._carrier.take()
        if not taken:
            return None
        ordered = sorted((mark for mark, _ in taken), key=lambda s: s.item.id)
        try:
            await _mark_in(session, ordered, utcnow())
        except BaseException:
            self._carrier.carried(taken, committed=False)
            raise
        return _Carried(self._carrier, taken)

    async def _failed(self, item: Claimed, error: DeliveryError) -> None:
        attempts = item.attempts + 1
        give_up = error.permanent or attempts >= self._policy.max_attempts
        now = utcnow()
        values: dict[str, object] = {
            "attempts": attempts,
            "last_error": error.reason[:2000],
            "locked_until": None,
        }
        if give_up:
            values["status"] = "failed"
        else:
            delay = self._policy.delay(attempts, error.retry_after)
            values["next_attempt_at"] = now + timedelta(seconds=delay)
        async with writer_turn(self._sessions), self._sessions.begin() as session:
            await session.execute(update(OutboxItem).where(OutboxItem.id == item.id).values(**values))
            is_card = (item.payload.get("extra") or {}).get("card_ticket_id") is not None
            if give_up and item.ticket_id is not None and not is_card:
                # Staff see it on the ticket: the requester did not get this message.
                session.add(
                    AuditEvent(
                        ticket_id=item.ticket_id,
                        actor="delivery",
                        action="delivery_failed",
                        detail={"outbox_id": item.id, "channel": item.channel, "reason": error.reason[:500]},
                    )
                )
                if self.on_give_up is not None:
                    await self.on_give_up(session, item.ticket_id)
        log.warning(
            "outbox item %s on %s failed (attempt %s, %s): %s",
            item.id,
            item.channel,
            attempts,
            "giving up" if give_up else "will retry",
            error.reason,
        )


def _recipient(item: Claimed) -> Recipient:
    return item.channel, str(item.payload.get("recipient"))
