"""A dead letter retried from the workspace inside `helpdesk run`: its receipt leaves at once.

Wired as `helpdesk run` wires it (service.py: the desk's ``outbox_written`` wakes the delivery worker; the
web serves the runtime's desk), with a worker that would otherwise look again only after an hour. Real
uvicorn over HTTP, the SMTP stand-in, both databases.
"""

from __future__ import annotations

import asyncio
import re

import httpx
from web_runtime import free_port

from helpdesk.config import Settings, WebSettings
from helpdesk.desk import Desk
from helpdesk.email.smtp_sender import SmtpSender
from helpdesk.usecases.dead_letters import store_dead_letter
from helpdesk.usecases.staff_accounts import add_account
from helpdesk.web.server import start_web
from helpdesk.worker import DeliveryWorker, RetryPolicy
from standins.smtp_server import SmtpStandIn

ADMIN, PASSWORD = "admin@tscc.example", "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MAIL = (
    b"From: Aliya <aliya@eco.gov.kz>\r\nTo: helpdesk@tscc.example.org\r\nSubject: Wetland inventory\r\n"
    b"Message-ID: <dead-wake@eco.gov.kz>\r\nDate: Mon, 30 Nov 2026 08:00:00 +0500\r\n\r\nGrant help.\r\n"
)


async def test_a_dead_letter_retried_on_the_web_wakes_the_running_worker(
    desk: Desk, database_url: str, smtp: SmtpStandIn
) -> None:
    mail = SmtpSender(smtp.host, smtp.port, tls=False, mail_from=desk.mail_from or "", timeout=5)
    worker = DeliveryWorker(desk.sessions, {"email": mail}, policy=RetryPolicy(lease=30), poll_interval=3600)
    desk.outbox_written = worker.wake
    await add_account(desk, ADMIN, name="Ada Admin", role="admin", password=PASSWORD)
    letter = await store_dead_letter(desk, MAIL, "the database was away")
    settings = Settings(database_url=database_url, mail_from=desk.mail_from)
    web = WebSettings(port=free_port())
    stop = asyncio.Event()
    delivery = asyncio.create_task(worker.run(stop))
    serving = await start_web(desk, web, stop, settings)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{web.port}", headers={"accept-language": "en"}
        ) as client:

            async def token(path: str) -> str:
                found = CSRF.search((await client.get(path)).text)
                assert found, path
                return found.group(1)

            signed = await client.post(
                "/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": await token("/login")}
            )
            assert signed.status_code == 303
            retried = await client.post(
                f"/admin/dead-letters/{letter.id}/retry", data={"csrf_token": await token("/")}
            )
            assert retried.status_code == 303
            assert "Received as TSCC-" in (await client.get(f"/admin/dead-letters/{letter.id}")).text
        # The worker sleeps for an hour unless the retry woke it: the receipt, and the admin's notification.
        sent = await smtp.wait_for_messages(2, timeout=20)
        assert sorted(m.rcpt_tos for m in sent) == [("admin@tscc.example",), ("aliya@eco.gov.kz",)]
    finally:
        stop.set()
        await serving
        await delivery
        await mail.close()
