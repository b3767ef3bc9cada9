"""Bulk actions from the inbox: assign, set a status or close many tickets, each by its own use-case.

Every ticket goes through the same use-case as a single action (``assign``, ``set_status``), in its own
transaction, audited with the actor, with the lifecycle's refusals. So a list is never half-applied
silently: the outcome of every reference is reported, ``done``, ``refused`` (with the refusal to show
staff: closed, already so, no such ticket) or ``not attempted`` (after an unexpected failure, which is
logged and stops the rest, since whatever failed, the database most likely, would fail them too).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from helpdesk import lifecycle
from helpdesk.db.models import Ticket
from helpdesk.desk import Desk
from helpdesk.usecases.assign import assign
from helpdesk.usecases.errors import DeskError
from helpdesk.usecases.inbox import UNASSIGNED, InvalidCriteria
from helpdesk.usecases.status import set_status

log = logging.getLogger(__name__)

# One page of the inbox at its largest: a bulk action is what staff selected on a page.
MAX_TICKETS = 200


class Outcome(StrEnum):
    DONE = "done"
    REFUSED = "refused"
    NOT_ATTEMPTED = "not attempted"


@dataclass(frozen=True)
class BulkOutcome:
    reference: str
    outcome: Outcome
    # The refusal or failure, fit to show staff; None when done.
    message: str | None = None


async def bulk_assign(
    desk: Desk, references: list[str], assignee: str | None, *, actor: str
) -> list[BulkOutcome]:
    """Assign every ticket to ``assignee`` (None or "none": unassign)."""
    target = None if assignee is None or assignee.strip().lower() == UNASSIGNED else assignee
    return await _each(references, lambda reference: assign(desk, reference, target, actor=actor))


async def bulk_status(desk: Desk, references: list[str], status: str, *, actor: str) -> list[BulkOutcome]:
    """Set every ticket's status; an unknown or unsettable status is refused once, before any ticket."""
    try:
        lifecycle.staff_move(status)
    except DeskError as refusal:
        raise InvalidCriteria(str(refusal)) from None
    return await _each(references, lambda reference: set_status(desk, reference, status, actor=actor))


async def bulk_close(desk: Desk, references: list[str], *, actor: str) -> list[BulkOutcome]:
    return await bulk_status(desk, references, lifecycle.Status.CLOSED, actor=actor)


async def _each(references: list[str], act: Callable[[str], Awaitable[Ticket]]) -> list[BulkOutcome]:
    unique = list(dict.fromkeys(r.strip() for r in references if r.strip()))
    if not unique:
        raise InvalidCriteria("select at least one ticket")
    if len(unique) > MAX_TICKETS:
        raise InvalidCriteria(f"at most {MAX_TICKETS} tickets at once, not {len(unique)}")
    outcomes: list[BulkOutcome] = []
    for position, reference in enumerate(unique):
        try:
            await act(reference)
        except DeskError as refusal:
            outcomes.append(BulkOutcome(reference, Outcome.REFUSED, str(refusal)))
            continue
        except Exception:
            log.exception("bulk action stopped at %s", reference[:20])
            stopped = "not done: the desk failed on this ticket; try again"
            outcomes.append(BulkOutcome(reference, Outcome.NOT_ATTEMPTED, stopped))
            outcomes.extend(
                BulkOutcome(r, Outcome.NOT_ATTEMPTED, "not done: stopped by the failure above")
                for r in unique[position + 1 :]
            )
            break
        outcomes.append(BulkOutcome(reference, Outcome.DONE))
    return outcomes
