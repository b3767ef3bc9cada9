"""Keeps the desk's triage in step with the database: staff corrections, the expert roster and the
resources kept from the workspace.

Several processes share one database (the service, the CLI), so each checks a cheap fingerprint of those
tables and rebuilds only when another process (or this one) changed them.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.classification import LabelledExample
from helpdesk.db.models import KbResource, RosterExpert
from helpdesk.db.models import LabelledExample as LabelledExampleRow
from helpdesk.desk import Desk
from helpdesk.triage import Triage, packaged_triage
from helpdesk.usecases.resources import current_resources
from knowledge import parse_experts


async def current_triage(desk: Desk, session: AsyncSession) -> Triage:
    # Every fingerprint in one round trip: this runs for every new ticket.
    fingerprint = select(
        select(func.count(LabelledExampleRow.id)).scalar_subquery(),
        select(func.max(LabelledExampleRow.id)).scalar_subquery(),
        select(func.count(RosterExpert.id)).scalar_subquery(),
        select(func.max(RosterExpert.loaded_at)).scalar_subquery(),
        select(func.count(KbResource.id)).scalar_subquery(),
        select(func.max(KbResource.loaded_at)).scalar_subquery(),
    )
    row = tuple((await session.execute(fingerprint)).one())
    examples, roster, resources = row[:2], row[2:4], row[4:]
    key = (examples, roster, resources)
    if desk.triage is not None and desk.triage_key == key:
        return desk.triage
    # The first build compiles the vocabulary (a few hundred ms): not on the event loop.
    triage = await asyncio.to_thread(packaged_triage)
    if roster[0]:
        rows = await session.scalars(select(RosterExpert.data).order_by(RosterExpert.id))
        triage = triage.with_experts(parse_experts({"experts": list(rows)}, file="database roster"))
    if resources[0]:
        triage = triage.with_resources(await current_resources(session))
    if examples[0]:
        rows = await session.scalars(select(LabelledExampleRow).order_by(LabelledExampleRow.id))
        triage = triage.with_examples(
            LabelledExample(r.text, tuple(r.targets), tuple(r.core_functions), id=f"#{r.id}") for r in rows
        )
    desk.triage, desk.triage_key = triage, key
    return triage
