"""The workspace served by uvicorn on loopback (a thread of its own) for real-browser tests with Playwright
driving Debian's chromium (`executable_path`: the browser download `playwright install` needs is not
reachable). The socket is bound and listening before the server starts, so the browser's first request
waits in the backlog instead of racing the start-up."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import uvicorn

from helpdesk.config import Settings, WebSettings
from helpdesk.db.engine import make_engine, make_sessions
from helpdesk.desk import Desk
from helpdesk.service import standard_composers
from helpdesk.web.app import create_app

T = TypeVar("T")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without the background-networking flags chromium keeps dialling Google's hosts, refused on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")


def with_desk(database_url: str, work: Callable[[Desk], Awaitable[T]]) -> T:
    """Run ``work`` on a desk of its own (seeding before the server starts, checking after)."""

    async def run() -> T:
        engine = make_engine(database_url)
        try:
            return await work(
                Desk(
                    sessions=make_sessions(engine),
                    mail_from="helpdesk@tscc.example.org",
                    composers=standard_composers(),
                )
            )
        finally:
            await engine.dispose()

    return off_thread(run())


def off_thread(work: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread: Playwright's sync API keeps an event loop running in the test's own."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


@contextlib.contextmanager
def served_workspace(database_url: str, settings: Settings | None = None) -> Iterator[str]:
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

    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.bind(("127.0.0.1", 0))
    listening.listen(64)
    port = listening.getsockname()[1]
    app = create_app(open_desk, WebSettings(port=port), settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()
