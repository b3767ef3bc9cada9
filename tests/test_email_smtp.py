"""Composing outbound email and sending it with aiosmtplib to a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from helpdesk.delivery import ChannelSender, DeliveryError
from helpdesk.email.mime_message import compose_email, tagged_subject
from helpdesk.email.parse import automatic_reason, parse_email
from helpdesk.email.smtp_sender import SmtpSender
from helpdesk.messages import OutboundMessage
from standins.smtp_server import SmtpStandIn, free_port

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
