"""Side effects as events: use-cases record what happened; the handler table decides what follows."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import OutboxItem
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases import events
from helpdesk.usecases.assign import assign
from helpdesk.usecases.note import add_note
from helpdesk.usecases.receive import receive
from helpdesk.usecases.reply import reply
from helpdesk.usecases.status import set_status


def test_every_event_has_its_handlers_and_refreshes_the_card() -> None:
    kinds = {kind.__name__ for kind in events.TicketEvent.__subclasses__()}
    assert kinds == {kind.__name__ for kind in events.HANDLERS}
    for kind, handlers in events.HANDLERS.items():
        assert handlers[-1] in (events._refresh_card, events._refresh_card_settled), kind


async def test_use_cases_record_events_inside_their_transaction(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk.staff_telegram_chat_id = -100
    seen: list[tuple[str, bool]] = []

    async def remember(desk: Desk, session: AsyncSession, event: events.TicketEvent) -> None:
        # Runs before the commit: the change it is about is visible in the same session, uncommitted.
        seen.append((type(event).__name__, session.in_transaction()))

    for kind, handlers in list(events.HANDLERS.items()):
        monkeypatch.setitem(events.HANDLERS, kind, (*handlers, remember))

    inbound = InboundMessage(
        channel="email",
        channel_message_id="<q@ecology.uz>",
        sender=Sender(name="B", email="b@ecology.uz"),
        subject="Wetland survey",
        text="We need help with a wetland survey.",
    )
    result = await receive(desk, inbound)
    await add_note(desk, result.reference, "ask Dilnoza", actor="cli:x")
    await assign(desk, result.reference, "dilnoza", actor="cli:x")
    await reply(desk, result.reference, "Here is the guidance.", actor="cli:x")
    await set_status(desk, result.reference, "resolved", actor="cli:x")
    assert seen == [
        ("MessageReceived", True),
        ("Noted", True),
        ("Reassigned", True),
        ("Replied", True),
        ("StatusChanged", True),
    ]
    # The card handler still queued the staff card: one card item, kept current (not one per event).
    async with desk.sessions() as session:
        cards = await session.scalar(
            select(func.count())
            .select_from(OutboxItem)
            .where(OutboxItem.channel == "telegram", OutboxItem.message_id.is_(None))
        )
    assert cards == 1
