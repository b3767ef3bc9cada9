"""The workspace's door: sessions, login, CSRF, roles, headers (attacks first)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from web_harness import PASSWORD, Web, open_web

from helpdesk.config import ConfigError, Settings
from helpdesk.usecases.staff_accounts import disable_account, set_password


@pytest.fixture
def web(database_url: str, engine: AsyncEngine) -> Iterator[Web]:
    # `engine` empties the database first; the app opens its own engine in the TestClient's loop.
    with open_web(database_url) as web:
        yield web


def test_every_page_needs_a_session_and_login_brings_you_back(web: Web) -> None:
    web.account()
    answer = web.client.get("/tickets/TSCC-2026-0001?x=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Ftickets%2FTSCC-2026-0001%3Fx%3D1"
    signed = web.sign_in("agent@tscc.example", next="/?view=all")
    assert signed.status_code == 303 and signed.headers["location"] == "/?view=all"
    inbox = web.client.get("/")
    assert inbox.status_code == 200 and 'name="q"' in inbox.text


def test_healthz_answers_without_login(web: Web) -> None:
    assert web.client.get("/healthz").json() == {"status": "ok"}


def test_a_post_without_the_csrf_token_is_refused(web: Web) -> None:
    web.account()
    assert web.sign_in("agent@tscc.example").status_code == 303
    bare = web.client.post("/logout", follow_redirects=False)
    assert bare.status_code == 403
    forged = web.client.post("/logout", data={"csrf_token": "x" * 43}, follow_redirects=False)
    assert forged.status_code == 403
    # Login itself is protected too (login CSRF would sign a victim into the attacker's account).
    no_token = web.client.post("/login", data={"email": "agent@tscc.example", "password": PASSWORD})
    assert no_token.status_code == 403


@pytest.mark.parametrize(
    "wanted",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "http:/evil",
        "javascript:alert(1)",
        "/%0d%0aSet-Cookie:x=1",
        "\\\\evil.example",
    ],
)
def test_login_never_redirects_off_site(web: Web, wanted: str) -> None:
    web.account()
    answer = web.sign_in("agent@tscc.example", next=wanted)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location == "/" or (location.startswith("/") and not location.startswith(("//", "/\\"))), location
    assert "evil" not in location or location.startswith("/%")


def test_login_is_rate_limited_per_account_and_per_address(web: Web) -> None:
    web.account()
    for _ in range(5):
        assert web.sign_in("agent@tscc.example", "wrong password!").status_code == 400
    # Now even the right password waits: guessing has stopped paying.
    assert web.sign_in("agent@tscc.example").status_code == 429
    # Per address: spraying many accounts from one address stops too.
    for n in range(15):
        web.sign_in(f"nobody{n}@tscc.example", "wrong password!")
    web.account("other@tscc.example")
    assert web.sign_in("other@tscc.example").status_code == 429


def test_unknown_disabled_and_wrong_look_alike(web: Web) -> None:
    web.account()
    web.account("gone@tscc.example")
    web.run(lambda desk: disable_account(desk, "gone@tscc.example"))
    answers = [
        web.sign_in("agent@tscc.example", "wrong password!"),
        web.sign_in("nobody@tscc.example"),
        web.sign_in("gone@tscc.example"),
    ]
    assert {a.status_code for a in answers} == {400}
    assert (
        len({a.text.replace(a.text.split('name="email" value="')[1].split('"')[0], "") for a in answers}) == 1
    )


@pytest.mark.parametrize("end", ["password", "disable"])
def test_password_change_and_disable_end_every_session(web: Web, end: str) -> None:
    web.account()
    assert web.sign_in("agent@tscc.example").status_code == 303
    assert web.client.get("/", follow_redirects=False).status_code == 200
    stolen = dict(web.client.cookies)
    if end == "password":
        web.run(lambda desk: set_password(desk, "agent@tscc.example", "a brand new password"))
    else:
        web.run(lambda desk: disable_account(desk, "agent@tscc.example"))
    web.client.cookies.clear()
    for name, value in stolen.items():
        web.client.cookies.set(name, value)
    assert web.client.get("/", follow_redirects=False).status_code == 303


def test_session_cookie_is_httponly_lax_and_holds_no_role(web: Web) -> None:
    web.account()
    answer = web.sign_in("agent@tscc.example")
    cookie = answer.headers["set-cookie"]
    assert (
        "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()
    )
    payload = base64.b64decode(cookie.split("=", 1)[1].split(".")[0] + "==").decode()
    assert json.loads(payload)["staff"] == [json.loads(payload)["staff"][0], 1]
    assert "agent" not in payload and "role" not in payload


def test_cookie_is_secure_behind_https_and_other_host_names_are_refused(
    database_url: str, engine: AsyncEngine
) -> None:
    with open_web(database_url, base_url="https://desk.tscc.example") as web:
        web.account()
        assert "secure" in web.sign_in("agent@tscc.example").headers["set-cookie"].lower()
        rebound = web.client.get("/login", headers={"host": "evil.example"})
        assert rebound.status_code == 400
        assert web.client.get("/healthz", headers={"host": "127.0.0.1:8080"}).status_code == 200


def test_security_headers_on_pages_and_refusals(web: Web) -> None:
    for path in ("/login", "/", "/healthz", "/static/htmx.min.js"):
        answer = web.client.get(path, follow_redirects=False)
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
    page = web.client.get("/login").text
    assert "<script>" not in page and " style=" not in page and "<style" not in page
    assert '<script src="/static/htmx.min.js"' in page


def test_language_switches_is_remembered_and_sets_html_lang(web: Web) -> None:
    assert '<html lang="en">' in web.client.get("/login?lang=en").text
    remembered = web.client.get("/login").text
    assert '<html lang="en">' in remembered and "Sign in" in remembered
    russian = web.client.get("/login?lang=ru").text
    assert '<html lang="ru">' in russian and "Войти" in russian
    assert '<html lang="ru">' in web.client.get("/login?lang=xx").text


def test_the_generated_key_is_kept_in_the_database_so_a_restart_signs_nobody_out(
    database_url: str, engine: AsyncEngine
) -> None:
    with open_web(database_url) as first:
        first.account()
        assert first.sign_in("agent@tscc.example").status_code == 303
        cookies = dict(first.client.cookies)
    with open_web(database_url) as restarted:
        for name, value in cookies.items():
            restarted.client.cookies.set(name, value)
        assert restarted.client.get("/", follow_redirects=False).status_code == 200


def test_web_settings_are_checked() -> None:
    base = {"HELPDESK_DATABASE_URL": "sqlite+aiosqlite:///x.db"}
    assert Settings.from_env(base, cwd=Path("/nonexistent")).web is None
    web = Settings.from_env({**base, "HELPDESK_WEB_PORT": "8088"}, cwd=Path("/nonexistent")).web
    assert web is not None and web.host == "127.0.0.1" and web.secret_key is None and not web.https
    for name, value, said in (
        ("HELPDESK_WEB_PORT", "eighty", "HELPDESK_WEB_PORT"),
        ("HELPDESK_WEB_SECRET_KEY", "short", "at least 32 characters"),
        ("HELPDESK_WEB_BASE_URL", "desk.example.org", "HELPDESK_WEB_BASE_URL must be an http"),
    ):
        with pytest.raises(ConfigError, match=said):
            Settings.from_env({**base, "HELPDESK_WEB_PORT": "8088", name: value}, cwd=Path("/nonexistent"))
    secured = Settings.from_env(
        {
            **base,
            "HELPDESK_WEB_PORT": "8088",
            "HELPDESK_WEB_BASE_URL": "https://desk.example.org/",
            "HELPDESK_WEB_SECRET_KEY": "s" * 40,
        },
        cwd=Path("/nonexistent"),
    ).web
    assert secured is not None and secured.https and secured.host_name == "desk.example.org"
    assert "s" * 40 not in repr(secured)
