"""Classification and matching on intake, staff reclassification and what it teaches — both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.db.models import AuditEvent, LabelledExample, OutboxItem
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.triage import packaged_triage
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.receive import receive
from helpdesk.usecases.reclassify import reclassify
from helpdesk.usecases.tickets import get_ticket

ROSTER = {e.id: e for e in packaged_triage().kb.experts}
NURLAN = Sender(name="Nurlan", telegram_user_id=9001, telegram_chat_id=9001, language="ru")


def telegram(n: int, text: str, sender: Sender = NURLAN) -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        channel_message_id=f"{sender.telegram_chat_id}:{n}",
        sender=sender,
        text=text,
        force_new=True,
    )


async def ticket_of(desk: Desk, reference: str):
    async with desk.sessions() as session:
        return await get_ticket(session, reference)


async def test_new_ticket_is_classified_matched_and_acknowledged_with_resources(desk: Desk) -> None:
    text = "Нужна методика оценки эффективности управления ООПТ (METT) для заповедников Каракалпакстана"
    result = await receive(desk, telegram(1, text))
    ticket = await ticket_of(desk, result.reference)

    classification = ticket.classification
    assert classification["targets"][0]["target"] == 3
    assert "mett" in classification["targets"][0]["evidence"]
    assert classification["party"] == "UZ" and ticket.party == "UZ"
    assert ticket.requester.party == "UZ"  # learned for this requester's next tickets
    assert not classification["unclassified"]
    experts = ticket.matches["experts"]
    assert experts and all(e["reasons"] for e in experts)
    assert any(3 in ROSTER[e["expert"]].targets for e in experts)
    assert ticket.matches["resources"]

    async with desk.sessions() as session:
        [ack] = list(await session.scalars(select(OutboxItem)))
    lines = [line for line in ack.payload["text"].splitlines() if line.startswith("•")]
    assert 1 <= len(lines) <= 3 and all("http" in line for line in lines)


async def test_greeting_is_unclassified_and_gets_no_resources(desk: Desk) -> None:
    result = await receive(desk, telegram(1, "Здравствуйте!"))
    ticket = await ticket_of(desk, result.reference)
    assert ticket.classification["unclassified"] is True
    assert ticket.matches["experts"] == []
    async with desk.sessions() as session:
        [ack] = list(await session.scalars(select(OutboxItem)))
    assert "•" not in ack.payload["text"]


async def test_reclassify_reruns_matching_audits_and_stores_example(desk: Desk) -> None:
    result = await receive(desk, telegram(1, "Нужна методика оценки эффективности управления ООПТ (METT)"))
    ticket = await reclassify(desk, result.reference, [20, 3], [7], actor="staff:aziza")
    assert [t["target"] for t in ticket.classification["targets"]] == [20, 3]
    assert ticket.classification["source"] == "staff" and ticket.classification["by"] == "staff:aziza"
    assert [c["core_function"] for c in ticket.classification["core_functions"]] == [7]
    assert ticket.matches["experts"] and ROSTER[ticket.matches["experts"][0]["expert"]].targets[0] in (20, 3)
    assert any(20 in ROSTER[e["expert"]].targets for e in ticket.matches["experts"])
    async with desk.sessions() as session:
        example = await session.scalar(select(LabelledExample))
        event = await session.scalar(select(AuditEvent).where(AuditEvent.action == "reclassified"))
    assert example is not None and example.targets == [20, 3] and "METT" in example.text
    assert event is not None and event.detail["previous_targets"][0] == 3


async def test_reclassify_refuses_nonsense(desk: Desk) -> None:
    result = await receive(desk, telegram(1, "вопрос по ООПТ"))
    with pytest.raises(InvalidTransition, match="no such KM-GBF target: 24"):
        await reclassify(desk, result.reference, [24], [], actor="x")
    with pytest.raises(InvalidTransition, match="no such core function: 12"):
        await reclassify(desk, result.reference, [3], [12], actor="x")
    with pytest.raises(InvalidTransition, match="at least one"):
        await reclassify(desk, result.reference, [], [2], actor="x")


async def test_staff_correction_is_used_for_similar_requests(desk: Desk) -> None:
    # A request whose vocabulary the knowledge base does not tie to the right target.
    request = "Просим помочь с созданием региональной сети кружков юных натуралистов при школах Бухары"
    first = await receive(desk, telegram(1, request))
    before = (await ticket_of(desk, first.reference)).classification
    before_top = before["targets"][0]["target"] if before["targets"] else None
    assert before_top != 16

    await reclassify(desk, first.reference, [16, 21], [8], actor="staff:aziza")
    similar = "Помогите создать сеть кружков юных натуралистов при школах Самарканда"
    second = await receive(desk, telegram(2, similar))
    after = (await ticket_of(desk, second.reference)).classification
    assert after["targets"][0]["target"] == 16
    assert any("staff example" in e for e in after["targets"][0]["evidence"])


async def test_loaded_roster_replaces_the_examples(desk: Desk, tmp_path) -> None:
    from helpdesk.usecases.roster import load_roster
    from knowledge import load_experts_file

    roster = tmp_path / "experts.csv"
    roster.write_text(
        "id,name,organisation,email,countries,languages,targets,core_functions,availability,max_open_tickets\n"
        "kz-001,Real Person One,Institute of Zoology,one@zool.example.kz,KZ,ru;en,3;1,5;7,available,5\n"
        "kz-002,Real Person Two,Kazakh NU,two@knu.example.kz,KZ,ru,11,2,limited,3\n",
        encoding="utf-8",
    )
    assert await load_roster(desk, load_experts_file(roster), actor="cli:test") == 2
    result = await receive(desk, telegram(1, "Нужен эксперт по ООПТ и ДМСО в Казахстане"))
    experts = (await ticket_of(desk, result.reference)).matches["experts"]
    assert [e["expert"] for e in experts][:1] == ["kz-001"]
    assert {e["expert"] for e in experts} <= {"kz-001", "kz-002"}
