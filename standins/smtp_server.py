"""An SMTP server on loopback that captures what it receives (aiosmtpd), for the demo and the tests.

async with SmtpStandIn() as smtp:                 # or SmtpStandIn(username="u", password="p")
    ... send to smtp.host:smtp.port ...
    await smtp.wait_for_messages(1)
    smtp.messages[0].message["Subject"]
    smtp.fail_next(code=550)                      # refuse the next message permanently
    await smtp.drop_connections()                 # cut the open connections (a server's idle limit)
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from standins.ports import start_on_a_port

Stage = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True, slots=True)
class CapturedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    # Login the client authenticated as, None without AUTH.
    login: str | None
    # The client's (host, port): messages from one connection share it.
    peer: tuple[str, int] | None = None


@dataclass(slots=True)
class _Refusal:
    remaining: int
    code: int
    text: str
    stage: Stage


class _Handler:
    def __init__(self, owner: SmtpStandIn) -> None:
        self._owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        refusal = self._owner._take_refusal("mail")
        if refusal is not None:
            if refusal.startswith("421"):
                # 421 means the server closes the channel: it does, once the reply is written.
                asyncio.get_running_loop().call_soon(server.transport.close)
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self._owner._take_refusal("rcpt")
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        refusal = self._owner._take_refusal("data")
        if refusal is not None:
            return refusal
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        parsed = message_from_bytes(data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        auth = session.auth_data
        self._owner._record(
            CapturedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=data,
                message=parsed,
                login=auth if isinstance(auth, str) else None,
                peer=tuple(session.peer) if session.peer else None,
            )
        )
        self._owner._sessions.add(server)
        return "250 Message accepted"


async def _call(function: Any) -> None:
    function()


class SmtpStandIn:
    """Capturing SMTP server on 127.0.0.1 with optional AUTH and failure injection."""

    def __init__(
        self, *, username: str | None = None, password: str | None = None, host: str = "127.0.0.1"
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.host = host
        self.port = 0
        self.username = username
        self.password = password
        self._messages: list[CapturedMessage] = []
        self._refusals: list[_Refusal] = []
        # The Controller serves from its own thread; the test reads from the event loop's thread.
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        # Connections that delivered a message, so that a test can cut them (touched on the server's thread).
        self._sessions: set[SMTP] = set()

    @property
    def messages(self) -> list[CapturedMessage]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._refusals.clear()

    def fail_next(
        self, n: int = 1, *, code: int = 550, text: str | None = None, stage: Stage = "rcpt"
    ) -> None:
        """Refuse the next ``n`` messages with ``code`` at MAIL, RCPT (default) or DATA; a 421 at MAIL
        also closes the connection, as a server past its idle limit does."""
        if not 400 <= code < 600:
            raise ValueError(f"a refusal needs a 4xx or 5xx code, got {code}")
        default = "5.1.1 Mailbox unavailable" if code >= 500 else "4.3.0 Try again later"
        with self._lock:
            self._refusals.append(_Refusal(n, code, text or default, stage))

    # A plain timeout argument reads better in tests than an asyncio.timeout() block around every call.
    async def wait_for_messages(self, n: int, timeout: float = 30.0) -> list[CapturedMessage]:  # noqa: ASYNC109
        """Wait until at least ``n`` messages were accepted; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.messages
            if len(current) >= n:
                return current
            if time.monotonic() >= deadline:
                raise TimeoutError(f"expected {n} message(s) within {timeout}s, got {len(current)}")
            await asyncio.sleep(0.01)

    async def start(self, *, port: int | None = None) -> None:
        """Start serving (on ``port`` when given: a test can take the server down and bring it back)."""
        self.port = await start_on_a_port(self.host, port, self._start_on)

    async def _start_on(self, port: int) -> None:
        kwargs: dict[str, Any] = {}
        if self.username is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                # Loopback only: AUTH without TLS is what lets the tests exercise aiosmtplib's AUTH.
                auth_require_tls=False,
            )
        controller = Controller(
            _Handler(self), hostname=self.host, port=port, server_hostname="smtp.standin.test", **kwargs
        )
        # Controller.start() blocks until its thread serves; keep that off the event loop.
        await asyncio.to_thread(controller.start)
        self._controller = controller

    async def drop_connections(self) -> None:
        """Close every connection that delivered a message, as a server's idle limit would."""
        controller = self._controller
        if controller is None or controller.loop is None:
            return

        def cut() -> None:
            for server in self._sessions:
                if server.transport is not None:
                    server.transport.close()
            self._sessions.clear()

        done = asyncio.run_coroutine_threadsafe(_call(cut), controller.loop)
        await asyncio.wrap_future(done)

    async def stop(self) -> None:
        if self._controller is not None:
            controller, self._controller = self._controller, None
            await asyncio.to_thread(controller.stop)

    async def __aenter__(self) -> SmtpStandIn:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode("utf-8", "replace") == self.username
            and auth_data.password.decode("utf-8", "replace") == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=self.username if ok else None)

    def _take_refusal(self, stage: Stage) -> str | None:
        with self._lock:
            for refusal in self._refusals:
                if refusal.stage == stage and refusal.remaining > 0:
                    refusal.remaining -= 1
                    if refusal.remaining == 0:
                        self._refusals.remove(refusal)
                    return f"{refusal.code} {refusal.text}"
        return None

    def _record(self, captured: CapturedMessage) -> None:
        with self._lock:
            self._messages.append(captured)
