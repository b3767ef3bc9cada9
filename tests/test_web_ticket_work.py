"""Tags, merge, reply with suggested resources, the stale-reply warning and presence through the web
(two sessions where two staff are involved), attacks first."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from web_harness import Web, open_web

from helpdesk.db.models import AuditEvent, Message, Ticket, TicketPresence
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.presence import EXPIRES
from helpdesk.usecases.receive import receive

TEXT = "We need guidance on protected area management effectiveness and the IUCN Green List standard."


@pytest.fixture
def web(database_url: str, engine: AsyncEngine) -> Iterator[Web]:
    with open_web(database_url) as web:
        yield web


def inbound(
    web: Web, n: int, text: str = TEXT, email: str = "aliya@eco.gov.kz", subject: str = "PAME"
) -> str:
    async def make(desk: Desk) -> str:
        message = InboundMessage(
            channel="email",
            channel_message_id=f"<work-{n}@eco.gov.kz>",
            sender=Sender(name="Aliya", email=email),
            subject=subject,
            text=text,
        )
        return (await receive(desk, message)).reference

    return web.run(make)


def follow_up(web: Web, n: int, reference: str, text: str) -> None:
    inbound(web, n, text, subject=f"Re: [{reference}] PAME")


def sign_in(
    web: Web, email: str = "agent@tscc.example", role: str = "agent", name: str = "Aida Agent"
) -> str:
    web.account(email, role=role, name=name)
    web.client.cookies.clear()
    assert web.sign_in(email).status_code == 303
    web.client.get("/?lang=en")
    return email


def outbound(web: Web, reference: str) -> list[str]:
    async def read(desk: Desk) -> list[str]:
        async with desk.sessions() as session:
            query = (
                select(Message.body)
                .join(Ticket)
                .where(Ticket.reference == reference, Message.kind == "outbound", ~Message.automatic)
            )
            return list(await session.scalars(query.order_by(Message.id)))

    return web.run(read)


def test_tags_added_and_removed_from_the_page_escaped_and_audited(web: Web) -> None:
    reference = inbound(web, 1)
    sign_in(web)
    page = f"/tickets/{reference}"
    web.post(f"{page}/tag", {"tag": "Funding"}, token_from=page)
    web.post(f"{page}/tag", {"tag": "<script>"}, token_from=page)
    shown = web.client.get(page).text
    assert '<span data-testid="tag">funding</span>' in shown and "a tag is" in shown
    web.post(f"{page}/untag", {"tag": "funding"}, token_from=page)
    assert 'data-testid="tag">' not in web.client.get(page).text

    async def actions(desk: Desk) -> list[str]:
        async with desk.sessions() as session:
            return list(
                await session.scalars(select(AuditEvent.action).where(AuditEvent.actor.like("web:%")))
            )

    assert {"tagged", "untagged"} <= set(web.run(actions))


def test_merge_from_the_page_only_within_one_requester(web: Web) -> None:
    survivor = inbound(web, 1, "Mangrove restoration")
    merged = inbound(web, 2, "Wetland mapping")
    stranger = inbound(web, 3, "Someone else's request", email="other@else.example")
    sign_in(web)
    page = f"/tickets/{merged}"
    assert 'data-testid="merge-form"' in web.client.get(page).text
    refused = web.post(f"{page}/merge", {"into": stranger}, token_from=page)
    assert refused.headers["location"] == page and "different requesters" in web.client.get(page).text
    garbage = web.post(f"{page}/merge", {"into": "../../admin"}, token_from=page)
    assert garbage.headers["location"] == page
    done = web.post(f"{page}/merge", {"into": survivor}, token_from=page)
    assert done.status_code == 303 and done.headers["location"] == f"/tickets/{survivor}"
    shown = web.client.get(f"/tickets/{survivor}").text
    assert "Wetland mapping" in shown and "Mangrove restoration" in shown
    assert f"Merged into {survivor}" in web.client.get(page).text


def test_reply_attaches_only_the_ticket_s_matched_resources(web: Web) -> None:
    reference = inbound(web, 1)
    sign_in(web)
    page = f"/tickets/{reference}"
    urls = re.findall(r'name="resource" value="([^"]+)"', web.client.get(page).text)
    assert urls, "the classifier matched resources to a PAME request"
    forged = web.post(
        f"{page}/reply", {"body": "See this", "resource": "https://evil.example/"}, token_from=page
    )
    assert forged.status_code == 303 and outbound(web, reference) == []
    assert "only the resources matched" in web.client.get(page).text
    web.post(f"{page}/reply", {"body": "Here is what we suggest.", "resource": urls[0]}, token_from=page)
    (sent,) = outbound(web, reference)
    assert sent.startswith("Here is what we suggest.") and urls[0].replace("&amp;", "&") in sent


def test_a_reply_on_a_stale_page_shows_the_newer_messages_and_sends_only_when_confirmed(web: Web) -> None:
    reference = inbound(web, 1)
    sign_in(web)
    page = f"/tickets/{reference}"
    html = web.client.get(page).text
    seen = re.search(r'name="seen" value="(\d+)"', html)
    assert seen
    follow_up(web, 2, reference, "Also: is there a Russian version?")
    answer = web.post(f"{page}/reply", {"body": "Draft <b>kept</b>", "seen": seen.group(1)}, token_from=page)
    assert answer.status_code == 200 and 'data-testid="stale-warning"' in answer.text
    assert "Also: is there a Russian version?" in answer.text and 'data-newer="true"' in answer.text
    assert "Draft &lt;b&gt;kept&lt;/b&gt;" in answer.text and 'name="confirm"' in answer.text
    assert outbound(web, reference) == []
    newest = re.search(r'name="seen" value="(\d+)"', answer.text)
    assert newest and int(newest.group(1)) > int(seen.group(1))
    confirmed = web.post(
        f"{page}/reply", {"body": "Draft", "seen": seen.group(1), "confirm": "1"}, token_from=page
    )
    assert confirmed.status_code == 303 and outbound(web, reference) == ["Draft"]
    # Up to date: sent at once.
    fresh = re.search(r'name="seen" value="(\d+)"', web.client.get(page).text)
    assert fresh
    web.post(f"{page}/reply", {"body": "Second", "seen": fresh.group(1)}, token_from=page)
    assert outbound(web, reference) == ["Draft", "Second"]


def test_presence_is_seen_by_the_other_staff_member_and_expires(web: Web) -> None:
    reference = inbound(web, 1)
    page = f"/tickets/{reference}"
    sign_in(web, "bob@tscc.example", name="Bob Burns")
    bob = dict(web.client.cookies)
    assert web.client.get(page).status_code == 200  # Bob opens the ticket
    web.client.get(f"{page}/presence?state=replying")  # and starts typing
    sign_in(web, "ann@tscc.example", name="Ann Ames")
    shown = web.client.get(page).text
    assert "Bob Burns has started a reply." in shown
    assert "Ann Ames" not in web.client.get(f"{page}/presence").text  # never yourself
    web.client.cookies.clear()
    web.client.cookies.update(bob)
    assert "Ann Ames is viewing this ticket." in web.client.get(f"{page}/presence").text

    async def age(desk: Desk) -> None:
        async with desk.sessions.begin() as session:
            long_ago = utcnow() - EXPIRES - timedelta(seconds=1)
            await session.execute(update(TicketPresence).values(seen_at=long_ago))

    web.run(age)
    assert "Ann Ames" not in web.client.get(f"{page}/presence").text  # closed the tab long ago
    assert web.client.get("/tickets/TSCC-2026-9999/presence").status_code == 404


def test_a_viewer_may_not_tag_merge_or_reply(web: Web) -> None:
    a, b = inbound(web, 1), inbound(web, 2, "Another")
    sign_in(web, "viewer@tscc.example", role="viewer", name="Vera Viewer")
    page = f"/tickets/{a}"
    for action, data in (("tag", {"tag": "x"}), ("untag", {"tag": "x"}), ("merge", {"into": b})):
        assert web.post(f"{page}/{action}", data, token_from=page).status_code == 403, action
    assert web.client.get(f"{page}/presence").status_code == 200  # reading is theirs
    assert web.client.post(f"{page}/merge", data={"into": b}).status_code == 403


def test_new_routes_need_a_session(web: Web) -> None:
    reference = inbound(web, 1)
    for path in (f"/tickets/{reference}/presence", "/?view=all&q=pame&party=KZ"):
        answer = web.client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path
    token = web.csrf("/login")  # a session's token, but nobody signed in
    for path, data in (
        ("/bulk", {"action": "close", "ticket": reference}),
        (f"/tickets/{reference}/merge", {"into": reference}),
        (f"/tickets/{reference}/tag", {"tag": "x"}),
    ):
        answer = web.client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path
