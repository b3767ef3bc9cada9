"""Settings: names from the brief's contract, defaults, files, and one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpdesk.config import ConfigError, Settings

MAIL = {"HELPDESK_SMTP_HOST": "smtp.example.org", "HELPDESK_MAIL_FROM": "helpdesk@tscc.example.org"}


def test_defaults_run_with_nothing_configured(workdir: Path) -> None:
    settings = Settings.from_env({})
    assert settings.database_url == f"sqlite+aiosqlite:///{workdir / 'helpdesk.db'}"
    assert settings.telegram is None and settings.imap is None and settings.smtp is None
    assert settings.timezone == "Asia/Tashkent"
    assert settings.spool_dir == workdir / "spool" and settings.spool_max_mb == 512
    assert settings.telegram_outage_grace_seconds == 60
    assert (settings.telegram_max_open_tickets, settings.telegram_receipts_per_minute) == (5, 3)


def test_telegram_outage_and_flood_settings(workdir: Path) -> None:
    settings = Settings.from_env(
        {
            "HELPDESK_SPOOL_DIR": "/var/lib/helpdesk/spool",
            "HELPDESK_SPOOL_MAX_MB": "64",
            "HELPDESK_TELEGRAM_OUTAGE_GRACE_SECONDS": "120",
            "HELPDESK_TELEGRAM_MAX_OPEN_TICKETS": "2",
            "HELPDESK_TELEGRAM_RECEIPTS_PER_MINUTE": "0",
        }
    )
    assert settings.spool_dir == Path("/var/lib/helpdesk/spool") and settings.spool_max_mb == 64
    assert settings.telegram_outage_grace_seconds == 120
    assert (settings.telegram_max_open_tickets, settings.telegram_receipts_per_minute) == (2, 0)


def test_full_configuration(workdir: Path) -> None:
    settings = Settings.from_env(
        {
            "HELPDESK_DATABASE_URL": "postgresql://helpdesk:pw@db:5432/helpdesk",
            "HELPDESK_TELEGRAM_TOKEN": "123:abc",
            "HELPDESK_TELEGRAM_STAFF_CHAT_ID": "-100200",
            "HELPDESK_STAFF_TELEGRAM_IDS": "11, 12",
            "HELPDESK_IMAP_HOST": "imap.example.org",
            "HELPDESK_IMAP_USER": "helpdesk",
            "HELPDESK_IMAP_PASSWORD": "imap-secret",
            "HELPDESK_SMTP_PORT": "465",
            "HELPDESK_SMTP_USER": "helpdesk",
            "HELPDESK_SMTP_PASSWORD": "smtp-secret",
            "HELPDESK_STAFF_EMAILS": "Aziza@tscc.example.org,b@tscc.example.org",
            **MAIL,
        }
    )
    assert settings.database_url == "postgresql+asyncpg://helpdesk:pw@db:5432/helpdesk"
    assert settings.telegram is not None and settings.telegram.api_url == "https://api.telegram.org/bot"
    assert settings.telegram.staff_chat_id == -100200
    assert settings.staff_telegram_ids == {11, 12}
    assert settings.imap is not None and settings.imap.port == 993 and settings.imap.tls
    assert settings.imap.mailbox == "INBOX" and settings.imap.password.reveal() == "imap-secret"
    assert settings.smtp is not None and settings.smtp.port == 465
    assert settings.staff_emails == {"aziza@tscc.example.org", "b@tscc.example.org"}
    # Secrets never show in a repr, and so not in a log or traceback.
    assert "imap-secret" not in repr(settings) and "smtp-secret" not in repr(settings)
    assert "abc" not in repr(settings.telegram)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HELPDESK_IMAP_HOST": "imap.example.org"}, "HELPDESK_IMAP_USER is not set"),
        (
            {"HELPDESK_IMAP_HOST": "h", "HELPDESK_IMAP_USER": "u", "HELPDESK_IMAP_PASSWORD": "p"},
            "HELPDESK_SMTP_HOST",
        ),
        ({"HELPDESK_SMTP_HOST": "smtp.example.org"}, "HELPDESK_MAIL_FROM is not set"),
        ({**MAIL, "HELPDESK_SMTP_PORT": "smtp"}, "HELPDESK_SMTP_PORT must be a whole number"),
        ({**MAIL, "HELPDESK_SMTP_PORT": "70000"}, "HELPDESK_SMTP_PORT must be a TCP port"),
        ({**MAIL, "HELPDESK_SMTP_TLS": "maybe"}, "HELPDESK_SMTP_TLS must be on or off"),
        ({**MAIL, "HELPDESK_MAIL_FROM": "helpdesk"}, "HELPDESK_MAIL_FROM must be an email address"),
        ({"HELPDESK_TELEGRAM_TOKEN": "nocolon"}, "HELPDESK_TELEGRAM_TOKEN does not look like a bot token"),
        (
            {"HELPDESK_TELEGRAM_TOKEN": "1:a", "HELPDESK_TELEGRAM_API_URL": "http://x/bot/"},
            "HELPDESK_TELEGRAM_API_URL",
        ),
        ({"HELPDESK_STAFF_TELEGRAM_IDS": "12,abc"}, "HELPDESK_STAFF_TELEGRAM_IDS must be comma-separated"),
        ({"HELPDESK_DATABASE_URL": "mysql://x/y"}, "HELPDESK_DATABASE_URL must start with"),
        (
            {"HELPDESK_TELEGRAM_TOKEN": "1:a", "HELPDESK_TELEGRAM_STAFF_CHAT_ID": "group"},
            "STAFF_CHAT_ID must be",
        ),
        ({"HELPDESK_TIMEZONE": "Mars/Olympus"}, "HELPDESK_TIMEZONE must be an IANA time zone"),
        ({"HELPDESK_TELEGRAM_OUTAGE_GRACE_SECONDS": "0"}, "HELPDESK_TELEGRAM_OUTAGE_GRACE_SECONDS must be"),
        ({"HELPDESK_TELEGRAM_MAX_OPEN_TICKETS": "0"}, "HELPDESK_TELEGRAM_MAX_OPEN_TICKETS must be between"),
        ({"HELPDESK_TELEGRAM_RECEIPTS_PER_MINUTE": "many"}, "HELPDESK_TELEGRAM_RECEIPTS_PER_MINUTE must be"),
        ({"HELPDESK_SPOOL_MAX_MB": "-1"}, "HELPDESK_SPOOL_MAX_MB must be between"),
    ],
)
def test_each_mistake_names_its_variable(workdir: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_files_add_settings_and_environment_wins(workdir: Path) -> None:
    (workdir / "helpdesk.toml").write_text('mail_from = "toml@tscc.example.org"\ntimezone = "UTC"\n')
    (workdir / ".env").write_text(
        "# comment\nHELPDESK_SMTP_HOST=smtp.example.org\nexport HELPDESK_TIMEZONE='Asia/Almaty'\n"
    )
    settings = Settings.from_env({"HELPDESK_MAIL_FROM": "env@tscc.example.org"})
    assert settings.mail_from == "env@tscc.example.org"  # environment over files
    assert settings.smtp is not None and settings.smtp.host == "smtp.example.org"  # from .env
    assert settings.timezone == "Asia/Almaty"  # .env over helpdesk.toml


def test_broken_toml_is_reported(workdir: Path) -> None:
    (workdir / "helpdesk.toml").write_text("mail_from = \n")
    with pytest.raises(ConfigError, match=r"helpdesk\.toml: not valid TOML"):
        Settings.from_env({})
