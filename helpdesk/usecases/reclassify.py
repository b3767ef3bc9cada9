"""Staff correct a ticket's classification: matching re-runs, and the correction teaches the classifier."""

from __future__ import annotations

from helpdesk.db.models import LabelledExample, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases import events
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.knowledge_state import current_triage
from helpdesk.usecases.referral_load import matching_load
from helpdesk.usecases.tickets import audit, get_ticket

TARGETS = range(1, 24)
CORE_FUNCTIONS = range(1, 12)


def _checked(values: list[int], allowed: range, what: str) -> list[int]:
    unique = list(dict.fromkeys(values))
    wrong = [v for v in unique if v not in allowed]
    if wrong:
        raise InvalidTransition(
            f"no such {what}: {', '.join(map(str, wrong))} (use {allowed.start}–{allowed.stop - 1})"
        )
    return unique


async def reclassify(
    desk: Desk, reference: str, targets: list[int], core_functions: list[int], *, actor: str
) -> Ticket:
    """Set the ticket's targets (primary first) and core functions; at least one target."""
    targets = _checked(targets, TARGETS, "KM-GBF target")
    core_functions = _checked(core_functions, CORE_FUNCTIONS, "core function")
    if not targets:
        raise InvalidTransition("give at least one KM-GBF target (the subject of the request first)")
    async with desk.sessions.begin() as session:
        ticket = await get_ticket(session, reference, for_update=True)
        previous = ticket.classification
        triage = await current_triage(desk, session)
        language = ticket.language or "ru"
        staff = triage.staff_classification(
            targets, core_functions, language=language, party=ticket.party, actor=actor
        )
        assessment = triage.assess(staff, language=language, load=await matching_load(session))
        ticket.classification = assessment.classification_json(source="staff", by=actor)
        ticket.matches = assessment.matches_json()
        ticket.updated_at = utcnow()
        session.add(
            LabelledExample(
                ticket_id=ticket.id,
                text=_request_text(ticket),
                targets=targets,
                core_functions=core_functions,
                created_by=actor,
            )
        )
        audit(
            session,
            ticket,
            actor,
            "reclassified",
            targets=targets,
            core_functions=core_functions,
            previous_targets=[t["target"] for t in (previous or {}).get("targets", [])][:3],
            previous_core_functions=[c["core_function"] for c in (previous or {}).get("core_functions", [])][
                :2
            ],
        )
        await events.record(desk, session, events.Reclassified(ticket))
    desk.outbox_written()
    return ticket


def _request_text(ticket: Ticket) -> str:
    """What the requester asked: the subject and their messages, which is what the classifier reads."""
    inbound = [m.body for m in ticket.messages if m.kind == "inbound" and not m.automatic]
    return "\n".join([ticket.subject, *inbound])[:20_000]
