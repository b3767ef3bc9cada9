"""The ticket page and its actions through the web, attacks first: escaping, roles, downloads, guessing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from web_harness import Web, open_web

from helpdesk.db.models import AuditEvent, Message, OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import Attachment, InboundMessage, Sender
from helpdesk.usecases.receive import receive

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def web(database_url: str, engine: AsyncEngine) -> Iterator[Web]:
    with open_web(database_url) as web:
        yield web


def _ticket(web: Web, n: int = 1, subject: str = "PAME tools", **extra: object) -> str:
    async def make(desk: Desk) -> str:
        result = await receive(
            desk,
            InboundMessage(
                channel="email",
                channel_message_id=f"<req-{n}@eco.gov.kz>",
                sender=Sender(name="Aliya", email="aliya@eco.gov.kz"),
                subject=subject,
                text=f"We need guidance on protected area management effectiveness. {n}",
                **extra,  # type: ignore[arg-type]
            ),
        )
        return result.reference

    return web.run(make)


def _signed_in(web: Web, role: str = "agent") -> str:
    email = web.account(f"{role}@tscc.example", role=role, name=f"{role.title()} Person")
    assert web.sign_in(email).status_code == 303
    return email


def test_requester_text_is_escaped_on_the_inbox_and_the_ticket_page(web: Web) -> None:
    reference = _ticket(web, subject=HOSTILE)
    _signed_in(web)
    for path in ("/?view=all", f"/tickets/{reference}", f"/?view=all&q={HOSTILE}"):
        page = web.client.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;" in page, path


def test_staff_actions_from_the_web_use_the_desk_and_are_audited_as_web_actor(web: Web) -> None:
    reference = _ticket(web)
    email = _signed_in(web)
    page = f"/tickets/{reference}"
    answer = web.post(f"{page}/reply", {"body": "Here is the PAME guidance."}, token_from=page)
    assert answer.status_code == 303 and answer.headers["location"] == page
    assert web.post(f"{page}/note", {"body": "Call them Monday."}, token_from=page).status_code == 303
    assert web.post(f"{page}/assign", {"assignee": email}, token_from=page).status_code == 303
    assert web.post(f"{page}/status", {"status": "resolved"}, token_from=page).status_code == 303

    async def state(desk: Desk) -> tuple[Ticket, list[AuditEvent], list[Message], list[OutboxItem]]:
        async with desk.sessions() as session:
            ticket = await session.scalar(select(Ticket).where(Ticket.reference == reference))
            assert ticket is not None
            events = list(await session.scalars(select(AuditEvent).where(AuditEvent.ticket_id == ticket.id)))
            messages = list(await session.scalars(select(Message).where(Message.ticket_id == ticket.id)))
            outbox = list(await session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == ticket.id)))
            return ticket, events, messages, outbox

    ticket, events, messages, outbox = web.run(state)
    assert ticket.status == "resolved" and ticket.assignee == email
    web_actions = {e.action for e in events if e.actor == f"web:{email}"}
    assert {"replied", "noted", "assigned", "status"} <= web_actions, web_actions
    reply = next(m for m in messages if m.kind == "outbound" and "PAME guidance" in m.body)
    assert any(item.message_id == reply.id for item in outbox), "the reply waits in the outbox"
    shown = web.client.get(page).text
    assert "Call them Monday." in shown and 'class="message note"' in shown
    assert 'data-testid="delivery"' in shown


def test_a_refused_action_says_why_and_changes_nothing(web: Web) -> None:
    reference = _ticket(web)
    _signed_in(web)
    page = f"/tickets/{reference}"
    assert web.post(f"{page}/note", {"body": "   "}, token_from=page).status_code == 303
    assert "a note needs some text" in web.client.get(page).text
    assert web.post(f"{page}/status", {"status": "new"}, token_from=page).status_code == 303
    assert (
        web.post(f"{page}/assign", {"assignee": "mallory@evil.example"}, token_from=page).status_code == 303
    )
    assert "mallory" not in web.client.get(page).text


def test_a_viewer_reads_but_every_post_is_403(web: Web) -> None:
    reference = _ticket(web)
    _signed_in(web, "viewer")
    page = f"/tickets/{reference}"
    assert web.client.get(page).status_code == 200
    for action in ("reply", "note", "status", "assign", "reclassify"):
        answer = web.post(
            f"{page}/{action}", {"body": "x", "status": "closed", "targets": "3"}, token_from=page
        )
        assert answer.status_code == 403, action
    assert web.post("/logout", {}, token_from=page).status_code == 303  # signing out is theirs


def test_strangers_cannot_tell_real_references_from_made_up_ones(web: Web) -> None:
    reference = _ticket(web)
    real = web.client.get(f"/tickets/{reference}", follow_redirects=False)
    made_up = web.client.get("/tickets/TSCC-2026-9999", follow_redirects=False)
    garbage = web.client.get("/tickets/%3Cscript%3E", follow_redirects=False)
    for answer in (real, made_up, garbage):
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
        assert answer.text == real.text
    post = web.client.post(f"/tickets/{reference}/note", data={"body": "x"}, follow_redirects=False)
    assert post.status_code == 403  # no CSRF token: refused before anything else
    _signed_in(web)
    assert web.client.get("/tickets/TSCC-2026-9999").status_code == 404


def test_attachments_download_with_their_type_and_never_render(web: Web) -> None:
    files = (
        Attachment("report.pdf", "application/pdf", b"%PDF-1.4 data"),
        Attachment("page.html", "text/html", b"<script>alert(1)</script>"),
        Attachment('evil"\r\nSet-Cookie: x=1.svg', "image/svg+xml", b"<svg onload=alert(1)>"),
    )
    reference = _ticket(web, attachments=files)
    _signed_in(web)
    page = web.client.get(f"/tickets/{reference}").text
    links = [line.split('"')[1] for line in page.split("<a href=") if "/attachments/" in line.split('"')[1]]
    assert len(links) == 3
    answers = [web.client.get(link) for link in links]
    pdf, html, svg = answers
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content == b"%PDF-1.4 data"
    for answer in answers:
        assert answer.headers["content-disposition"].startswith("attachment;")
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in answer.headers["content-security-policy"]
    assert html.headers["content-type"] == "application/octet-stream"
    assert svg.headers["content-type"] == "application/octet-stream"
    assert "\r" not in svg.headers["content-disposition"] and "x=1" not in svg.headers.get("set-cookie", "")
    # Another ticket's reference does not reach this ticket's files.
    other = _ticket(web, 2)
    assert web.client.get(links[0].replace(reference, other)).status_code == 404
