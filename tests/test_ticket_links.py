"""Staff cards and staff notification mails link to the ticket's workspace page when HELPDESK_WEB_BASE_URL
is set (and say nothing of it when it is not); the card goes through the real worker to the Bot API
stand-in, the mail through the real worker to the SMTP server."""

from __future__ import annotations

from dataclasses import replace

from bot.sender import TelegramSender
from helpdesk.desk import Desk
from helpdesk.email.smtp_sender import SmtpSender
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.receive import receive
from helpdesk.worker import DeliveryWorker, RetryPolicy
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn

FAST = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2, lease=30)
STAFF_CHAT = -100777
BASE = "https://desk.tscc.example/ws"
MAIL_FROM = "helpdesk@tscc.example.org"
LEAD = frozenset({"lead@tscc.example.org"})


async def mail(desk: Desk, n: int) -> str:
    inbound = InboundMessage(
        channel="email",
        channel_message_id=f"<link{n}@eco.gov.kz>",
        sender=Sender(name="Aliya", email="aliya@eco.gov.kz"),
        text="We need help with protected area management",
        subject=f"Request {n}",
    )
    return (await receive(desk, inbound)).reference


async def deliver(desk: Desk, bot_api: TelegramApiStandIn, smtp: SmtpStandIn) -> None:
    smtp_sender = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=MAIL_FROM, timeout=5)
    async with TelegramSender(bot_api.token, bot_api.base_url) as telegram:
        worker = DeliveryWorker(desk.sessions, {"telegram": telegram, "email": smtp_sender}, policy=FAST)
        while await worker.deliver_due():
            pass


async def test_card_and_notification_link_to_the_ticket_page(
    desk: Desk, bot_api: TelegramApiStandIn, smtp: SmtpStandIn
) -> None:
    linked = replace(
        desk,
        web_base_url=BASE,
        staff_telegram_chat_id=STAFF_CHAT,
        staff_emails=LEAD,
    )
    reference = await mail(linked, 1)
    await deliver(linked, bot_api, smtp)
    [card] = bot_api.sent_messages(STAFF_CHAT)
    assert f"{BASE}/tickets/{reference}" in card["text"]
    [notice] = [m.message for m in smtp.messages if "lead@tscc.example.org" in m.rcpt_tos]
    assert f"{BASE}/tickets/{reference}" in notice.get_body(("plain",)).get_content()


async def test_without_a_base_url_nothing_links(
    desk: Desk, bot_api: TelegramApiStandIn, smtp: SmtpStandIn
) -> None:
    plain = replace(desk, staff_telegram_chat_id=STAFF_CHAT, staff_emails=LEAD)
    await mail(plain, 2)
    await deliver(plain, bot_api, smtp)
    [card] = bot_api.sent_messages(STAFF_CHAT)
    assert "/tickets/" not in card["text"]
    [notice] = [m.message for m in smtp.messages if "lead@tscc.example.org" in m.rcpt_tos]
    assert "/tickets/" not in notice.get_body(("plain",)).get_content()
