"""Ticket cards for the staff Telegram group: what a card says, its buttons, and queueing it in the outbox.

A card is an outbox item on the "telegram" channel addressed to the staff chat, so that posting it survives
a crash like any other message. Its ``extra`` carries ``card_ticket_id``: the delivery worker then edits
the ticket's existing card (``Ticket.telegram_card_message_id``) instead of posting a second one, and
records the id of a card it posted. The buttons are plain Bot API JSON; the bot interprets their
``callback_data`` (see ``bot/staff.py``), the desk never imports a Telegram library.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import lifecycle
from helpdesk.db.models import Attachment, AuditEvent, Message, OutboxItem, Referral, Requester, Ticket
from helpdesk.db.transaction_memo import transaction_values
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import OutboundMessage
from helpdesk.rendering import render
from helpdesk.usecases.one_flush import written_together
from helpdesk.usecases.read_ahead import NOT_READ, answered

__all__ = [
    "CARD_EXCERPT",
    "button_labels",
    "card_markup",
    "card_outbound",
    "classification_context",
    "queue_card",
    "queue_card_for",
    "refresh_card",
    "staff_language",
]

CARD_EXCERPT = 600
TOP_EXPERTS = 3
SHOWN_TARGETS = 3
SHOWN_CORE_FUNCTIONS = 2


def staff_language() -> str:
    """The staff group's language: the Centre works in Russian."""
    return "ru"


@cache
def button_labels(language: str) -> dict[str, str]:
    """Button captions from ``templates/bot/buttons.<lang>.txt.j2`` (``key = caption`` lines)."""
    labels: dict[str, str] = {}
    for line in render("bot/buttons.{lang}.txt.j2", language).splitlines():
        key, sep, caption = line.partition("=")
        if sep:
            labels[key.strip()] = caption.strip()
    return labels


def card_markup(reference: str, status: str, language: str | None = None) -> dict[str, Any]:
    """The card's standard buttons (callback data stays under Telegram's 64 bytes: ``st:<op>:<ref>``)."""
    label = button_labels(language or staff_language())

    def button(key: str, op: str) -> dict[str, str]:
        return {"text": label[key], "callback_data": f"st:{op}:{reference}"}

    rows = [
        [button("assign_me", "me"), button("reassign", "who")],
        [button("reclassify", "rc"), button("status", "status")],
        [button("refer", "ref")],
    ]
    if status != lifecycle.Status.CLOSED:
        rows.append([button("close", "close")])
    return {"inline_keyboard": rows}


@cache
def _knowledge() -> Any:
    # Loaded once per process: titles for the card and the expert roster for matching.
    from knowledge import load_knowledge_base

    return load_knowledge_base()


def _titles(language: str) -> tuple[dict[int, str], dict[int, str]]:
    try:
        kb = _knowledge()
    except Exception:  # a broken knowledge base must not stop cards; numbers alone still help staff
        return {}, {}
    field = "title_ru" if language == "ru" else "title_en"
    targets = {n: getattr(t, field) for n, t in kb.targets.items()}
    functions = {n: getattr(c, field) for n, c in kb.core_functions.items()}
    return targets, functions


def _experts(ticket: Ticket) -> list[dict[str, Any]]:
    """Top experts as the desk matched them when it classified the ticket (``Ticket.matches``)."""
    matches = getattr(ticket, "matches", None)
    stored = matches.get("experts") if isinstance(matches, dict) else None
    if not isinstance(stored, list):
        return []
    return [e for e in stored if isinstance(e, dict)][:TOP_EXPERTS]


def classification_context(ticket: Ticket, language: str) -> dict[str, Any]:
    classification = ticket.classification
    if not classification or classification.get("unclassified"):
        return {"classified": False, "targets": [], "core_functions": [], "experts": []}
    target_titles, function_titles = _titles(language)
    targets = [
        {
            "number": int(t["target"]),
            "title": target_titles.get(int(t["target"]), ""),
            "score": float(t.get("score") or 0),
        }
        for t in (classification.get("targets") or [])[:SHOWN_TARGETS]
    ]
    functions = [
        {
            "number": int(c["core_function"]),
            "title": function_titles.get(int(c["core_function"]), ""),
            "score": float(c.get("score") or 0),
        }
        for c in (classification.get("core_functions") or [])[:SHOWN_CORE_FUNCTIONS]
    ]
    experts = [
        {"name": str(e.get("name") or e.get("expert") or "?"), "score": float(e.get("score") or 0)}
        for e in _experts(ticket)
    ]
    return {
        "classified": bool(targets or functions),
        "targets": targets,
        "core_functions": functions,
        "experts": experts,
    }


async def card_outbound(
    session: AsyncSession, ticket: Ticket, chat_id: int, *, ticket_url: str | None = None
) -> OutboundMessage:
    """The card for ``ticket`` as it is now in this transaction; ``ticket_url``: its workspace page."""
    await session.flush()
    requester = await session.get(Requester, ticket.requester_id)
    # Everything else the card shows in one round trip: it is drawn for every card the worker sends.
    first_inbound = (
        select(Message.id)
        .where(Message.ticket_id == ticket.id, Message.kind == "inbound")
        .order_by(Message.id)
        .limit(1)
        .scalar_subquery()
    )
    facts = select(
        select(Message.body).where(Message.id == first_inbound).scalar_subquery(),
        select(func.count(Message.id))
        .where(Message.ticket_id == ticket.id, Message.kind == "inbound")
        .scalar_subquery(),
        select(OutboxItem.last_error)
        .where(
            OutboxItem.ticket_id == ticket.id,
            OutboxItem.status == "failed",
            OutboxItem.message_id.is_not(None),
        )
        .order_by(OutboxItem.id.desc())
        .limit(1)
        .scalar_subquery(),
        select(AuditEvent.action)
        .where(AuditEvent.ticket_id == ticket.id, AuditEvent.action.in_(("blocked_bot", "unblocked_bot")))
        .order_by(AuditEvent.id.desc())
        .limit(1)
        .scalar_subquery(),
        select(func.count(Attachment.id)).where(Attachment.message_id == first_inbound).scalar_subquery(),
    )
    body, inbound_count, delivery_error, blocked, attachments = (await session.execute(facts)).one()
    referrals = [
        f"{r.expert_id or r.organisation}: {r.stage}"
        for r in (await session.scalars(select(Referral).where(Referral.ticket_id == ticket.id))).unique()
    ]
    language = staff_language()
    excerpt = (body or "").strip()
    if len(excerpt) > CARD_EXCERPT:
        excerpt = excerpt[: CARD_EXCERPT - 1].rstrip() + "…"
    text = render(
        "bot/card.{lang}.txt.j2",
        language,
        reference=ticket.reference,
        status=ticket.status,
        channel=ticket.channel,
        party=ticket.party or (requester.party if requester else None),
        language=ticket.language,
        assignee=ticket.assignee,
        requester=(requester.name or requester.email or "") if requester else "",
        subject=ticket.subject,
        excerpt=excerpt,
        attachments=attachments or 0,
        messages=inbound_count or 0,
        delivery_error=delivery_error,
        blocked=blocked == "blocked_bot",
        referrals=referrals,
        ticket_url=ticket_url,
        **classification_context(ticket, language),
    ).strip()
    return OutboundMessage(
        channel="telegram",
        recipient=str(chat_id),
        text=text,
        reference=ticket.reference,
        extra={
            "reply_markup": card_markup(ticket.reference, ticket.status, language),
            "card_ticket_id": ticket.id,
            # Staff should hear about new tickets, not about every edit of a card.
            "disable_notification": ticket.telegram_card_message_id is not None,
        },
    )


def _newest_card_item(ticket_id: Any, column: Any, *conditions: Any, locked: bool = False) -> Any:
    """The newest of a ticket's card items meeting ``conditions`` (the card index serves it)."""
    newest = (
        select(column)
        .where(
            OutboxItem.ticket_id == ticket_id,
            OutboxItem.message_id.is_(None),
            OutboxItem.channel == "telegram",
            *conditions,
        )
        .order_by(OutboxItem.id.desc())
        .limit(1)
    )
    return (newest.with_for_update() if locked else newest).scalar_subquery()


# Each ticket's card queue: a card item still waiting (it covers any change), when its last card was sent,
# and whether a worker holds one now (a card being sent: the next one settles from now, not from the card
# before it, or two edits could land a moment apart). Built once; for several tickets in one round trip.
# The waiting item is locked until the reader's commit (PostgreSQL; on SQLite the writer lock does it): a
# worker's claim passes it by meanwhile, so the card it covers is not drawn before the change it covers.
CARD_QUEUE = (
    _newest_card_item(
        Ticket.id,
        OutboxItem.id,
        OutboxItem.status == "pending",
        OutboxItem.payload["extra"]["card_ticket_id"].as_integer() == Ticket.id,
        or_(OutboxItem.locked_until.is_(None), OutboxItem.locked_until < bindparam("now")),
        locked=True,
    ).label("card_waiting"),
    _newest_card_item(Ticket.id, OutboxItem.sent_at, OutboxItem.status == "sent").label("card_last_sent"),
    _newest_card_item(
        Ticket.id, OutboxItem.id, OutboxItem.status == "pending", OutboxItem.locked_until >= bindparam("now")
    ).label("card_in_flight"),
)
_QUEUES = select(Ticket.id, *CARD_QUEUE).where(Ticket.id.in_(bindparam("ticket_ids", expanding=True)))
_QUEUES_READ = "cards.queues_read"


async def _queue_of(session: AsyncSession, ticket: Ticket, now: datetime) -> tuple[Any, Any, Any]:
    """``ticket``'s card queue (waiting item, last sent, in flight). A group commit's tickets are read
    together, by the first of their after-written steps to ask, and each answer used once, by its ticket's
    step: only that step queues a card for its ticket, so the answer is still what the database says."""
    read_along = answered(session, "card_queue", ticket.id)
    if read_along is not NOT_READ:  # a lone message's first read brought it (``lone_read``)
        return read_along  # type: ignore[no-any-return]
    together = written_together(session)
    memo = transaction_values(session)
    read = memo.get(_QUEUES_READ)
    if read is not None and read[0] is together and ticket.id in read[1]:
        answer: tuple[Any, Any, Any] = read[1].pop(ticket.id)
        return answer
    ids = sorted({t.id for t in together} | {ticket.id})
    rows = await session.execute(_QUEUES, {"ticket_ids": ids, "now": now})
    queues = {row[0]: (row[1], row[2], row[3]) for row in rows}
    if together:
        memo[_QUEUES_READ] = (together, queues)
    return queues.pop(ticket.id, (None, None, None))


async def queue_card(
    desk: Desk, session: AsyncSession, ticket: Ticket, *, settle_seconds: float = 0.0
) -> None:
    """Queue posting or refreshing ``ticket``'s card, inside the caller's transaction.

    The outbox item names the ticket only; the worker draws the card when it sends it, so the card shows
    the ticket as it is then, and intake does not pay for drawing it. A card still waiting in the outbox
    covers any later change: a burst of changes costs one Bot API call. With ``settle_seconds`` the new
    card waits until that long after the last one was sent, so a flood of messages is one edit per period.
    """
    chat_id = desk.staff_telegram_chat_id
    if chat_id is None:
        return
    now = utcnow()
    waiting, last_sent, in_flight = await _queue_of(session, ticket, now)
    if waiting is not None:
        return
    due = now
    if settle_seconds > 0 and in_flight is not None:
        due = now + timedelta(seconds=settle_seconds)
    elif settle_seconds > 0 and last_sent is not None:
        due = max(now, last_sent + timedelta(seconds=settle_seconds))
    placeholder = OutboundMessage(
        channel="telegram",
        recipient=str(chat_id),
        text="",
        reference=ticket.reference,
        # The worker draws the card and holds no desk: the page's address travels with the item.
        extra={"card_ticket_id": ticket.id, "ticket_url": desk.ticket_url(ticket.reference)},
    )
    session.add(
        OutboxItem(
            ticket_id=ticket.id,
            message_id=None,
            channel="telegram",
            payload=placeholder.to_json(),
            next_attempt_at=due,
        )
    )


async def queue_card_for(desk: Desk, session: AsyncSession, ticket_id: int) -> None:
    """:func:`queue_card` by ticket id (for the delivery worker, which holds no Ticket)."""
    ticket = await session.get(Ticket, ticket_id)
    if ticket is not None:
        await queue_card(desk, session, ticket)


async def refresh_card(desk: Desk, reference: str) -> None:
    """Queue a fresh card for ``reference`` in a transaction of its own (after a change made elsewhere)."""
    if desk.staff_telegram_chat_id is None:
        return
    async with desk.sessions.begin() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.reference == reference))
        if ticket is not None:
            await queue_card(desk, session, ticket)
    desk.outbox_written()
