"""`helpdesk run`'s warm start (helpdesk/warm_start.py): the triage built before the first request, start-up's
objects frozen out of the collector's way, and a database away at start stops nothing."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.service import standard_composers
from helpdesk.usecases.receive import ReceiveResult
from helpdesk.usecases.take import take_together
from helpdesk.warm_start import warm_start


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """This process runs other tests after: what a test froze goes back to the collector."""
    yield
    gc.unfreeze()


async def test_the_first_request_after_a_start_finds_the_triage_built(desk: Desk) -> None:
    assert desk.triage is None
    frozen_before = gc.get_freeze_count()
    await warm_start(desk)
    built = desk.triage
    assert built is not None
    # Start-up's objects are out of the collector's walk: a full collection no longer visits them.
    assert gc.get_freeze_count() > frozen_before + 10_000
    sender = Sender(name="Aliya", telegram_user_id=4401, telegram_chat_id=4401, language="ru")
    inbound = InboundMessage("telegram", "4401:1", sender, "Нужна помощь с охраняемыми территориями")
    [taken] = await take_together(desk, [inbound])
    assert isinstance(taken, ReceiveResult) and taken.created
    assert desk.triage is built  # classified with the triage built at start, not a new build


async def test_a_database_away_at_start_stops_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'no such folder' / 'helpdesk.db'}")
    desk = Desk(sessions=make_sessions(engine), composers=standard_composers())
    try:
        with caplog.at_level(logging.WARNING, logger="helpdesk.warm_start"):
            await warm_start(desk)
    finally:
        await engine.dispose()
    assert desk.triage is None  # the first new request builds it, as before
    assert "triage not built at start (OperationalError)" in caplog.text
    assert gc.get_freeze_count() > 0
