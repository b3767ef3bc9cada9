"""Composing outbound email and sending it with aiosmtplib to a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiosmtplib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.delivery import ChannelSender, DeliveryError
from helpdesk.email.mime_message import compose_email, render_email, tagged_subject
from helpdesk.email.parse import automatic_reason, parse_email
from helpdesk.email.smtp_pool import SmtpPool
from helpdesk.email.smtp_sender import SmtpSender
from helpdesk.messages import OutboundMessage
from standins.ports import free_port
from standins.smtp_server import SmtpStandIn

MAIL_FROM = "TSCC Help Desk <helpdesk@tscc.example>"


def ack(**overrides: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "channel": "email",
        "recipient": "a.ivanova@minpriroda.kz",
        "text": "Ваш запрос зарегистрирован: TSCC-2026-0042.\nWe will reply within 3 working days.",
        "subject": "Запрос принят",
        "reference": "TSCC-2026-0042",
        "in_reply_to": "<request.1@minpriroda.kz>",
        "references": ("<older.0@minpriroda.kz>",),
    }
    fields.update(overrides)
    return OutboundMessage(**fields)  # type: ignore[arg-type]


# --- compose -----------------------------------------------------------------------------------------------


def test_compose_threads_tags_and_marks_automatic() -> None:
    msg = compose_email(ack(), mail_from=MAIL_FROM)
    assert msg["Subject"] == "[TSCC-2026-0042] Запрос принят"
    assert msg["From"].addresses[0].addr_spec == "helpdesk@tscc.example"
    assert msg["To"].addresses[0].addr_spec == "a.ivanova@minpriroda.kz"
    assert msg["In-Reply-To"] == "<request.1@minpriroda.kz>"
    # The parent comes last in References, after the older history.
    assert str(msg["References"]).split() == ["<older.0@minpriroda.kz>", "<request.1@minpriroda.kz>"]
    assert str(msg["Message-ID"]).endswith("@tscc.example>")
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Loop"] == "helpdesk@tscc.example"
    # 7-bit transport: Cyrillic travels encoded, and decodes back to the same text.
    wire = msg.as_bytes()
    assert all(byte < 128 for byte in wire)
    assert "Ваш запрос зарегистрирован" in msg.get_body(("plain",)).get_content()


def test_compose_keeps_existing_tag_and_given_message_id() -> None:
    msg = compose_email(
        ack(subject="Re: [TSCC-2026-0042] Запрос принят", message_id="<reply.7@tscc.example>"),
        mail_from=MAIL_FROM,
    )
    assert msg["Subject"] == "Re: [TSCC-2026-0042] Запрос принят"
    assert msg["Message-ID"] == "<reply.7@tscc.example>"
    assert tagged_subject(None, "TSCC-2026-0001") == "[TSCC-2026-0001]"
    assert tagged_subject("Hello", None) == "Hello"


def test_compose_staff_reply_with_html_alternative() -> None:
    msg = compose_email(
        ack(
            extra={"auto_submitted": "no", "recipient_name": "Айгерим Иванова"},
            html="<p>Ответ <b>staff</b></p>",
        ),
        mail_from=MAIL_FROM,
    )
    assert msg["Auto-Submitted"] == "no"
    assert msg.get_content_type() == "multipart/alternative"
    assert "<b>staff</b>" in msg.get_body(("html",)).get_content()
    assert msg["To"].addresses[0].display_name == "Айгерим Иванова"
    # What we send must not be mistaken for a person's mail by our own intake when a staff reply says "no"…
    assert automatic_reason(msg, own_addresses=()) is None
    # …while it is recognised as ours if it loops back.
    assert automatic_reason(msg, own_addresses=["helpdesk@tscc.example"]) == "X-Loop: our own address"


@pytest.mark.parametrize(
    "overrides",
    [
        {"recipient": "not an address"},
        {"recipient": "a@b.example\r\nBcc: victim@example.org"},
        {"message_id": "no-angle-brackets"},
        {"extra": {"auto_submitted": "yes-please"}},
        {"channel": "telegram"},
    ],
)
def test_compose_rejects_bad_input(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        compose_email(ack(**overrides), mail_from=MAIL_FROM)


def test_compose_writes_the_wire_form_by_the_rules() -> None:
    """Written without the email package, the mail keeps what it guaranteed: 7-bit, CRLF, lines within
    76 (encoded words included), an IDNA domain, quoted display names."""
    rendered = render_email(
        ack(
            subject="Ответ на ваш запрос о программе восстановления деградированных земель в Каракалпакстане "
            "и о подготовке национального доклада",
            recipient="ivan@почта.рф",
            references=tuple(f"<older.{n}@minpriroda.kz>" for n in range(12)),
            extra={"recipient_name": 'Ivanov, I. "Vanya"', "reply_to": "reply+abc@tscc.example"},
            html="<p>Ответ</p>",
        ),
        mail_from=MAIL_FROM,
    )
    assert all(byte < 128 for byte in rendered.data)
    assert b"\n" not in rendered.data.replace(b"\r\n", b"")
    header, _, _ = rendered.data.partition(b"\r\n\r\n")
    assert all(len(line) <= 76 for line in header.split(b"\r\n"))
    assert rendered.recipient == "ivan@xn--80a1acny.xn--p1ai"
    assert rendered.envelope_from == "helpdesk@tscc.example"
    msg = compose_email(
        ack(recipient="ivan@почта.рф", extra={"recipient_name": 'Ivanov, I. "Vanya"'}), mail_from=MAIL_FROM
    )
    assert msg["To"].addresses[0].display_name == 'Ivanov, I. "Vanya"'
    assert msg["To"].addresses[0].domain == "xn--80a1acny.xn--p1ai"
    assert not msg.defects and all(not part.defects for part in msg.walk())


@pytest.mark.parametrize("field", ["subject", "in_reply_to", "recipient_name"])
def test_compose_refuses_a_line_break_in_a_header(field: str) -> None:
    value = "Hello\r\nBcc: victim@example.org"
    overrides: dict[str, object] = (
        {"extra": {"recipient_name": value}} if field == "recipient_name" else {field: value}
    )
    with pytest.raises(ValueError):
        render_email(ack(**overrides), mail_from=MAIL_FROM)


_header_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(' "\\=?<>,;:()'), max_size=200
)


@settings(max_examples=150, deadline=None)
@given(
    subject=_header_text,
    name=_header_text,
    text=st.text(max_size=300),
    html=st.none() | st.text(max_size=100),
)
def test_compose_reads_back_what_it_was_given(subject: str, name: str, text: str, html: str | None) -> None:
    msg = compose_email(
        ack(subject=subject, text=text, html=html, extra={"recipient_name": name}, reference=None),
        mail_from=MAIL_FROM,
    )
    assert str(msg["Subject"]) == subject.strip()
    # Readers collapse runs of white space in a display name (the stdlib's parser does, whatever wrote it)
    # and it also puts a space between the encoded words a very long word is cut into.
    assert "".join(msg["To"].addresses[0].display_name.split()) == "".join(name.split())
    plain_name = "Айгерим Жаксылыкова-Иванова"
    named = compose_email(ack(extra={"recipient_name": plain_name}), mail_from=MAIL_FROM)
    assert named["To"].addresses[0].display_name == plain_name
    assert msg["To"].addresses[0].addr_spec == "a.ivanova@minpriroda.kz"

    def same(body: str, sent: str) -> bool:
        return body.replace("\r\n", "\n").rstrip("\n") == sent.replace("\r\n", "\n").replace(
            "\r", "\n"
        ).rstrip("\n")

    assert same(msg.get_body(("plain",)).get_content(), text)
    if html:
        assert same(msg.get_body(("html",)).get_content(), html)


# --- send against aiosmtpd ---------------------------------------------------------------------------------


async def test_send_delivers_a_threaded_message(smtp: SmtpStandIn) -> None:
    sender: ChannelSender = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=MAIL_FROM, timeout=5)
    message_id = await sender.send(ack())
    [captured] = await smtp.wait_for_messages(1)
    assert captured.mail_from == "helpdesk@tscc.example"
    assert captured.rcpt_tos == ("a.ivanova@minpriroda.kz",)
    assert captured.message["Message-ID"] == message_id
    # The requester's client sees a reply to their own message in the same thread.
    received = parse_email(captured.data)
    assert received.replies_to[-1] == "<request.1@minpriroda.kz>"
    assert received.subject == "[TSCC-2026-0042] Запрос принят"
    assert "TSCC-2026-0042" in received.text
    assert received.automatic is True


async def test_send_with_auth_and_password_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with SmtpStandIn(username="helpdesk", password="s3cret-pw") as smtp:
        sender = SmtpSender(
            smtp.host, smtp.port, username="helpdesk", password="s3cret-pw", tls=False, mail_from=MAIL_FROM
        )
        await sender.send(ack())
        [captured] = await smtp.wait_for_messages(1)
        assert captured.login == "helpdesk"

        wrong = SmtpSender(
            smtp.host, smtp.port, username="helpdesk", password="wrong-pw", tls=False, mail_from=MAIL_FROM
        )
        with pytest.raises(DeliveryError) as info:
            await wrong.send(ack())
        # A bad password is our configuration, not the message: retrying after a fix must still work.
        assert info.value.permanent is False
    assert "s3cret-pw" not in caplog.text and "wrong-pw" not in caplog.text
    assert "s3cret-pw" not in repr(sender)


async def test_550_is_permanent(smtp: SmtpStandIn) -> None:
    smtp.fail_next(code=550, text="5.1.1 User unknown")
    sender = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=MAIL_FROM, timeout=5)
    with pytest.raises(DeliveryError) as info:
        await sender.send(ack())
    assert info.value.permanent is True
    assert "550" in info.value.reason
    assert smtp.messages == []
    # The refusal was for one message only: the next goes through.
    await sender.send(ack())
    assert len(await smtp.wait_for_messages(1)) == 1


async def test_451_is_temporary_at_rcpt_and_554_at_data_is_permanent(smtp: SmtpStandIn) -> None:
    sender = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=MAIL_FROM, timeout=5)
    smtp.fail_next(code=451)
    with pytest.raises(DeliveryError) as temporary:
        await sender.send(ack())
    assert temporary.value.permanent is False
    assert "451" in temporary.value.reason

    smtp.fail_next(code=554, text="5.7.1 Message rejected as spam", stage="data")
    with pytest.raises(DeliveryError) as permanent:
        await sender.send(ack())
    assert permanent.value.permanent is True
    assert "554" in permanent.value.reason
    assert smtp.messages == []


async def test_server_down_is_temporary() -> None:
    port = free_port()  # nothing listens there
    sender = SmtpSender("127.0.0.1", port, tls=False, mail_from=MAIL_FROM, timeout=2)
    with pytest.raises(DeliveryError) as info:
        await sender.send(ack())
    assert info.value.permanent is False


async def test_silent_server_times_out_as_temporary() -> None:
    # A peer that accepts TCP but never greets: the timeout must fire and be retryable.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    try:
        sender = SmtpSender(
            "127.0.0.1", listener.getsockname()[1], tls=False, mail_from=MAIL_FROM, timeout=0.3
        )
        with pytest.raises(DeliveryError) as info:
            await asyncio.wait_for(sender.send(ack()), 5)
        assert info.value.permanent is False
    finally:
        listener.close()


async def test_tls_required_but_not_offered_is_temporary(smtp: SmtpStandIn) -> None:
    sender = SmtpSender(smtp.host, smtp.port, tls=True, mail_from=MAIL_FROM, timeout=5)
    with pytest.raises(DeliveryError) as info:
        await sender.send(ack())
    assert info.value.permanent is False
    assert smtp.messages == []


async def test_uncomposable_message_is_permanent(smtp: SmtpStandIn) -> None:
    sender = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=MAIL_FROM)
    with pytest.raises(DeliveryError) as info:
        await sender.send(ack(recipient="nobody"))
    assert info.value.permanent is True


# --- one connection kept open across sends -----------------------------------------------------------------


async def test_many_sends_share_one_connection(smtp: SmtpStandIn) -> None:
    sender = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=MAIL_FROM, timeout=5)
    for n in range(20):
        await sender.send(ack(message_id=f"<ack.{n}@tscc.example>"))
    captured = await smtp.wait_for_messages(20)
    assert len({c.peer for c in captured}) == 1
    await sender.close()


async def test_concurrent_sends_use_at_most_the_pool_size(smtp: SmtpStandIn) -> None:
    sender = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=MAIL_FROM, timeout=5, connections=3)
    ids = await asyncio.gather(*(sender.send(ack(recipient=f"r{n}@ngo.example")) for n in range(12)))
    captured = await smtp.wait_for_messages(12)
    assert {c.message["Message-ID"] for c in captured} == set(ids)
    assert 1 <= len({c.peer for c in captured}) <= 3
    await sender.close()


async def test_server_closing_the_connection_between_sends(smtp: SmtpStandIn) -> None:
    sender = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=MAIL_FROM, timeout=5)
    await sender.send(ack())
    await smtp.drop_connections()
    await sender.send(ack())
    first, second = await smtp.wait_for_messages(2)
    assert first.peer != second.peer
    await sender.close()


async def test_a_stale_connection_is_retried_once_on_a_new_one(smtp: SmtpStandIn) -> None:
    # The server's idle limit as Postfix words it: 421 on the next command, then the channel closes.
    sender = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=MAIL_FROM, timeout=5)
    await sender.send(ack())
    smtp.fail_next(code=421, text="4.4.2 Timeout exceeded", stage="mail")
    await sender.send(ack())
    first, second = await smtp.wait_for_messages(2)
    assert first.peer != second.peer

    # Twice in a row: the retry failed too, so the send counts as a temporary failure (no third attempt).
    smtp.fail_next(2, code=421, text="4.4.2 Timeout exceeded", stage="mail")
    with pytest.raises(DeliveryError) as info:
        await sender.send(ack())
    assert info.value.permanent is False
    # Both refusals were used: exactly one retry.
    await sender.send(ack())
    assert len(await smtp.wait_for_messages(3)) == 3
    await sender.close()


async def test_a_refusal_keeps_the_connection(smtp: SmtpStandIn) -> None:
    sender = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=MAIL_FROM, timeout=5)
    await sender.send(ack())
    smtp.fail_next(code=550)
    with pytest.raises(DeliveryError):
        await sender.send(ack())
    await sender.send(ack())
    first, second = await smtp.wait_for_messages(2)
    assert first.peer == second.peer
    await sender.close()


async def test_the_server_restarting_between_sends() -> None:
    server = SmtpStandIn()
    await server.start()
    port = server.port
    sender = SmtpSender(server.host, port, tls=False, mail_from=MAIL_FROM, timeout=5)
    try:
        await sender.send(ack())
        await server.wait_for_messages(1)
        await server.stop()
        # Down: the send fails as temporary, and the worker's retry finds it back.
        with pytest.raises(DeliveryError) as info:
            await sender.send(ack())
        assert info.value.permanent is False
        await server.start(port=port)
        await sender.send(ack())
        assert len(await server.wait_for_messages(2)) == 2
    finally:
        await sender.close()
        await server.stop()


async def test_the_server_restarting_while_a_connection_is_idle() -> None:
    server = SmtpStandIn()
    await server.start()
    port = server.port
    sender = SmtpSender(server.host, port, tls=False, mail_from=MAIL_FROM, timeout=5)
    try:
        await sender.send(ack())
        await server.stop()
        await server.start(port=port)
        await sender.send(ack())
        assert len(await server.wait_for_messages(2)) == 2
    finally:
        await sender.close()
        await server.stop()


async def test_an_idle_connection_is_closed_after_its_idle_time(smtp: SmtpStandIn) -> None:
    opened: list[aiosmtplib.SMTP] = []
    closed = asyncio.Event()

    async def connect() -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, start_tls=False, timeout=5)
        await client.connect()
        close = client.close

        def close_and_tell() -> None:
            close()
            closed.set()

        client.close = close_and_tell  # type: ignore[method-assign]
        opened.append(client)
        return client

    async def noop(client: aiosmtplib.SMTP) -> None:
        await client.noop()

    pool = SmtpPool(connect, idle_seconds=0.0)
    await pool.use(noop)
    await asyncio.wait_for(closed.wait(), 5)
    assert not opened[0].is_connected
    await pool.use(noop)
    assert len(opened) == 2
    await pool.close()
