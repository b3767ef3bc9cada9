"""The inbox through the web on the real query (views, filters, search, keyset pages) and bulk actions,
attacks first: made-up and garbage references, a viewer's POST, no CSRF token, a damaged page link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from web_harness import Web, open_web

from helpdesk.db.models import Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.receive import receive

ROW = re.compile(r'data-testid="ticket-row".*?<span class="ref">([^<]+)</span>', re.S)


@pytest.fixture
def web(database_url: str, engine: AsyncEngine) -> Iterator[Web]:
    with open_web(database_url) as web:
        yield web


def ticket(
    web: Web, n: int, subject: str, text: str = "guidance please", email: str = "aliya@eco.gov.kz"
) -> str:
    async def make(desk: Desk) -> str:
        inbound = InboundMessage(
            channel="email",
            channel_message_id=f"<inbox-{n}@eco.gov.kz>",
            sender=Sender(name="Aliya", email=email),
            subject=subject,
            text=text,
        )
        return (await receive(desk, inbound)).reference

    return web.run(make)


def refs(html: str) -> list[str]:
    return ROW.findall(html)


def sign_in(web: Web, role: str = "agent") -> str:
    email = web.account(f"{role}@tscc.example", role=role, name=f"{role.title()} Person")
    assert web.sign_in(email).status_code == 303
    web.client.get("/?lang=en")
    return email


def statuses(web: Web) -> dict[str, str]:
    async def read(desk: Desk) -> dict[str, str]:
        async with desk.sessions() as session:
            return {t.reference: t.status for t in await session.scalars(select(Ticket))}

    return web.run(read)


def test_search_filters_and_views_come_from_the_real_query(web: Web) -> None:
    mangrove = ticket(web, 1, "Mangrove restoration", "coastal wetlands in the delta")
    pame = ticket(web, 2, "PAME tools", "protected area management effectiveness")
    sign_in(web)
    assert set(refs(web.client.get("/?view=all").text)) == {mangrove, pame}
    # Full text: a word only in a message body finds its ticket; the subject filter of old is gone.
    assert refs(web.client.get("/?view=all&q=wetlands").text) == [mangrove]
    assert refs(web.client.get("/?view=all&q=effectiveness").text) == [pame]
    assert refs(web.client.get("/?view=all&channel=telegram").text) == []
    assert set(refs(web.client.get("/?view=all&assignee=none").text)) == {mangrove, pame}
    page = web.client.get("/?view=all&q=wetlands&channel=email").text
    assert 'value="wetlands"' in page and '<option value="email" selected>' in page  # kept in the form


def test_a_bad_filter_gets_a_clear_message_not_a_crash(web: Web) -> None:
    ticket(web, 1, "PAME tools")
    sign_in(web)
    for query, says in (
        ("party=ZZ", "unknown Party"),
        ("target=99", "no KM-GBF target"),
        ("target=abc", "Choose a number"),
        ("after=garbage", "damaged"),
        ("status=deleted", "unknown status"),
    ):
        answer = web.client.get(f"/?view=all&{query}")
        assert answer.status_code == 400 and says in answer.text, query


def test_keyset_pages_walk_every_ticket_once(web: Web) -> None:
    made = {ticket(web, n, f"Request {n}") for n in range(55)}
    sign_in(web)
    first = web.client.get("/?view=all&q=request").text
    seen = refs(first)
    assert len(seen) == 50
    link = re.search(r'href="([^"]+)" rel="next"', first)
    assert link
    second = web.client.get(link.group(1).replace("&amp;", "&")).text
    assert 'data-testid="first-page"' in second
    seen += refs(second)
    assert sorted(seen) == sorted(made) and 'rel="next"' not in second


def test_bulk_close_reports_every_reference_and_touches_only_real_tickets(web: Web) -> None:
    a, b = ticket(web, 1, "One"), ticket(web, 2, "Two")
    sign_in(web)
    answer = web.client.post(
        "/bulk",
        data={
            "csrf_token": web.csrf("/?view=all"),
            "action": "close",
            "ticket": [a, b, "TSCC-2026-99999", "<script>x</script>"],
            "back": "//evil.example/",
        },
    )
    assert answer.status_code == 200
    text = answer.text
    assert f"{a}</span>: done" in text and f"{b}</span>: done" in text
    assert "no ticket TSCC-2026-99999" in text
    assert "&lt;script&gt;x&lt;/script&gt;</span>: refused" in text and "<script>x" not in text
    assert 'href="/" data-testid="back"' in text  # no open redirect
    assert statuses(web) == {a: "closed", b: "closed"}


def test_bulk_assign_and_status_go_through_the_lifecycle(web: Web) -> None:
    a = ticket(web, 1, "One")
    email = sign_in(web)
    token = web.csrf("/?view=all")
    web.client.post("/bulk", data={"csrf_token": token, "action": "assign", "assignee": email, "ticket": a})
    assert refs(web.client.get("/?view=mine").text) == [a]
    refused = web.client.post(
        "/bulk",
        data={"csrf_token": token, "action": "assign", "assignee": "mallory@evil.example", "ticket": a},
    )
    assert refused.status_code == 400 and "Choose someone from the list" in refused.text
    bad = web.client.post(
        "/bulk", data={"csrf_token": token, "action": "status", "status": "new", "ticket": a}
    )
    assert bad.status_code == 400
    assert statuses(web) == {a: "open"}  # assigning opened it; the refused status changed nothing


def test_bulk_needs_csrf_and_an_agent(web: Web) -> None:
    a = ticket(web, 1, "One")
    sign_in(web, "viewer")
    page = web.client.get("/?view=all").text
    assert 'name="ticket"' not in page  # a viewer gets no checkboxes
    assert web.client.post("/bulk", data={"action": "close", "ticket": a}).status_code == 403
    viewer = web.client.post("/bulk", data={"csrf_token": web.csrf("/"), "action": "close", "ticket": a})
    assert viewer.status_code == 403
    assert statuses(web) == {a: "new"}


def test_the_overdue_view_lists_what_waits_past_the_response_target(web: Web) -> None:
    late, fresh = ticket(web, 1, "Late"), ticket(web, 2, "Fresh")

    async def age(desk: Desk) -> None:
        async with desk.sessions.begin() as session:
            row = await session.scalar(select(Ticket).where(Ticket.reference == late))
            assert row is not None
            row.created_at = row.created_at - timedelta(hours=49)

    web.run(age)
    sign_in(web)
    page = web.client.get("/?view=overdue").text
    assert refs(page) == [late] and fresh not in page
    assert "past the response target</strong>" in page
