"""The settings that point the help desk at running stand-ins, as environment variables.

One place for the mapping, so `helpdesk run` subprocesses in tests, fault scenarios and benchmarks all
configure their channels the same way.
"""

from __future__ import annotations

from standins.imap_server import ImapStandIn
from standins.smtp_server import SmtpStandIn
from standins.telegram_api import TelegramApiStandIn


def standin_environment(
    *,
    smtp: SmtpStandIn | None = None,
    imap: ImapStandIn | None = None,
    bot_api: TelegramApiStandIn | None = None,
) -> dict[str, str]:
    env: dict[str, str] = {}
    if smtp is not None:
        env |= {
            "HELPDESK_SMTP_HOST": smtp.host,
            "HELPDESK_SMTP_PORT": str(smtp.port),
            "HELPDESK_SMTP_TLS": "off",
        }
    if imap is not None:
        env |= {
            "HELPDESK_IMAP_HOST": imap.host,
            "HELPDESK_IMAP_PORT": str(imap.port),
            "HELPDESK_IMAP_USER": imap.user,
            "HELPDESK_IMAP_PASSWORD": imap.password,
            "HELPDESK_IMAP_TLS": "off",
        }
    if bot_api is not None:
        env |= {"HELPDESK_TELEGRAM_TOKEN": bot_api.token, "HELPDESK_TELEGRAM_API_URL": bot_api.base_url}
    return env
