"""Before `helpdesk run` serves: the triage built, and what start-up made moved out of the collector's way.

The first new request after a start used to build the triage (vocabulary, experts, resources: 0.4–0.5 s
of that requester's wait). And every full garbage collection walked the ~230,000 objects start-up leaves
for good (the knowledge base, the model, templates, the libraries' own): 70–110 ms in which nothing else
ran, seen as a lone Telegram message acknowledged in 120 ms instead of 7. Built here, then frozen
(``gc.freeze``), a full collection walks only what was made since.

Frozen objects are never collected; what start-up made and later drops (the first triage, once staff
corrections rebuild it) is freed by reference counting as before, unless it sits in a reference cycle:
then it stays, once.
"""

from __future__ import annotations

import gc
import logging

from helpdesk.desk import Desk
from helpdesk.usecases.knowledge_state import current_triage

log = logging.getLogger(__name__)


async def warm_start(desk: Desk) -> None:
    try:
        async with desk.sessions() as session:
            await current_triage(desk, session)
    except Exception as exc:
        # Not a reason to stay down: the first new request builds it, as it did before.
        log.warning("triage not built at start (%s); the first new request builds it", type(exc).__name__)
    gc.collect()  # start-up's garbage is not frozen with the rest
    gc.freeze()
