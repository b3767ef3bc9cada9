"""The workspace's door: sessions, login, CSRF, roles, headers (attacks first)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from web_harness import PASSWORD, Web, open_web


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
