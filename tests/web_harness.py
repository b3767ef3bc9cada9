"""The web workspace under Starlette's TestClient, over the test database (SQLite and PostgreSQL).

The app opens its own engine inside the TestClient's event loop (its lifespan); `Web.run` runs a
coroutine there too, to seed accounts and tickets through the desk's own use-cases.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from starlette.testclient import TestClient

from helpdesk.config import Secret, Settings, WebSettings
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.desk import Desk
from helpdesk.service import standard_composers
from helpdesk.usecases.staff_accounts import add_account
from helpdesk.web.app import create_app

T = TypeVar("T")
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Web:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def desk(self) -> Desk:
        return self.client.app.state.desk  # type: ignore[attr-defined]

    def run(self, make: Callable[[Desk], Awaitable[T]]) -> T:
        async def call() -> T:
            return await make(self.desk)

        assert self.client.portal is not None
        return self.client.portal.call(call)

    def account(self, email: str = "agent@tscc.example", role: str = "agent", **kw: Any) -> str:
        self.run(
            lambda desk: add_account(
                desk, email, name=kw.pop("name", "Aida Agent"), role=role, password=PASSWORD, **kw
            )
        )
        return email

    def csrf(self, path: str = "/login") -> str:
        found = CSRF.search(self.client.get(path).text)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def sign_in(self, email: str, password: str = PASSWORD, **extra: str) -> Any:
        token = self.csrf("/login")
        return self.client.post(
            "/login",
            data={"email": email, "password": password, "csrf_token": token, **extra},
            follow_redirects=False,
        )

    def post(self, path: str, data: dict[str, str], *, token_from: str | None = None) -> Any:
        token = self.csrf(token_from or "/")
        return self.client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


@contextlib.contextmanager
def open_web(
    database_url: str, *, base_url: str | None = None, settings: Settings | None = None
) -> Iterator[Web]:
    @contextlib.asynccontextmanager
    async def open_desk() -> AsyncIterator[Desk]:
        engine = make_engine(database_url)
        try:
            yield Desk(
                sessions=make_sessions(engine),
                mail_from="helpdesk@tscc.example.org",
                composers=standard_composers(),
            )
        finally:
            await engine.dispose()

    web_settings = WebSettings(
        port=8080, base_url=base_url, secret_key=Secret("k" * 40) if base_url else None
    )
    app = create_app(open_desk, web_settings, settings)
    with TestClient(app, base_url=base_url or "http://testserver") as client:
        yield Web(client)
