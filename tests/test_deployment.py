"""docker-compose.yml and the Dockerfile: no Docker engine runs here, so check their structure instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

import helpdesk.config

ROOT = Path(__file__).resolve().parent.parent
# Every variable the application reads is spelled out in the config module.
READ_BY_APP = set(re.findall(r'"(HELPDESK_[A-Z_]+)"', Path(helpdesk.config.__file__).read_text()))
CONTRACT = {
    f"HELPDESK_{name}"
    for name in (
        "DATABASE_URL", "TELEGRAM_TOKEN", "TELEGRAM_API_URL", "TELEGRAM_STAFF_CHAT_ID", "STAFF_TELEGRAM_IDS",
        "IMAP_HOST", "IMAP_PORT", "IMAP_USER", "IMAP_PASSWORD", "IMAP_TLS", "IMAP_MAILBOX",
        "SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "SMTP_TLS", "MAIL_FROM", "STAFF_EMAILS",
        "MAIL_TRUSTED_AUTHSERV_ID",
    )
}  # fmt: skip


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_app_reads_every_contract_variable() -> None:
    assert CONTRACT <= READ_BY_APP, CONTRACT - READ_BY_APP


def test_compose_runs_postgres_and_the_help_desk_with_migrations_on_start() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "helpdesk"}
    assert services["db"]["image"].startswith("postgres:")
    assert "healthcheck" in services["db"]
    desk = services["helpdesk"]
    assert desk["build"] == "."
    assert desk["depends_on"]["db"]["condition"] == "service_healthy"
    assert "helpdesk db upgrade" in " ".join(desk["command"]) and "helpdesk run" in " ".join(desk["command"])
    assert desk["environment"]["HELPDESK_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@db:5432/" in desk["environment"]["HELPDESK_DATABASE_URL"]


def test_compose_passes_only_variables_the_app_reads_and_all_of_the_contract() -> None:
    passed = set(compose()["services"]["helpdesk"]["environment"])
    assert passed <= READ_BY_APP, passed - READ_BY_APP
    assert CONTRACT <= passed, CONTRACT - passed


def test_compose_holds_no_secret_values() -> None:
    environment = compose()["services"]["helpdesk"]["environment"]
    secrets = (
        "TELEGRAM_TOKEN",
        "TELEGRAM_WEBHOOK_SECRET",
        "IMAP_PASSWORD",
        "SMTP_PASSWORD",
        "WEB_SECRET_KEY",
    )
    for name in (f"HELPDESK_{secret}" for secret in secrets):
        assert re.fullmatch(r"\$\{[A-Z_]+:-\}", environment[name]), name


def test_compose_keeps_the_webhook_listener_on_loopback() -> None:
    environment = compose()["services"]["helpdesk"]["environment"]
    assert environment["HELPDESK_TELEGRAM_WEBHOOK_LISTEN"] == "${HELPDESK_TELEGRAM_WEBHOOK_LISTEN:-127.0.0.1}"


def test_dockerfile_installs_the_package_and_runs_the_service() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("bot", "helpdesk", "knowledge", "templates"):
        assert f"COPY {folder} ./{folder}" in dockerfile
    assert "pip install ." in dockerfile
    # The plain package: no extra, and no stand-ins copied into the production image.
    assert "pip install .[" not in dockerfile and "pip install '.[" not in dockerfile
    assert "standins" not in dockerfile
    assert "LICENSE" in dockerfile  # pyproject's license-files: the build fails without it
    assert "helpdesk run" in dockerfile and "USER helpdesk" in dockerfile


def test_compose_publishes_the_web_workspace_on_the_hosts_loopback_only() -> None:
    desk = compose()["services"]["helpdesk"]
    assert desk["ports"] == ["127.0.0.1:${HELPDESK_WEB_PORT:-8080}:${HELPDESK_WEB_PORT:-8080}"]
