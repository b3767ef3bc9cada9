"""The workspace served by uvicorn as one more task of `helpdesk run`, which keeps SIGTERM/SIGINT.

uvicorn would install its own signal handlers (and raise the signal again when it stops); here the
runtime's stop event ends it instead, and a port that cannot be bound is the one-line start error every
channel gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn

from helpdesk.channels import ChannelStartError
from helpdesk.config import Settings, WebSettings
from helpdesk.desk import Desk
from helpdesk.web.app import create_app, given

log = logging.getLogger(__name__)


class WebStartError(ChannelStartError):
    pass


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # `helpdesk run` owns the signals: its stop event ends this server

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        await super().startup(sockets)
        self.up.set()


async def start_web(
    desk: Desk,
    web: WebSettings,
    stop: asyncio.Event,
    settings: Settings | None = None,
    *,
    response_target_hours: float = 48.0,
) -> asyncio.Task[None]:
    """Listening once this returns; the task ends after ``stop`` is set (requests in hand finish)."""
    config = uvicorn.Config(
        create_app(given(desk), web, settings, response_target_hours=response_target_hours),
        host=web.host,
        port=web.port,
        log_level="warning",
        access_log=False,  # request lines carry ticket references and search words
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)

    async def run() -> None:
        watcher = asyncio.create_task(stop.wait())
        watcher.add_done_callback(lambda _: setattr(server, "should_exit", True))
        try:
            await server.serve()
        except SystemExit:
            raise WebStartError(
                f"the web workspace cannot listen on {web.host}:{web.port} "
                "(check HELPDESK_WEB_HOST and HELPDESK_WEB_PORT: in use, or not an address of this host)"
            ) from None
        finally:
            watcher.cancel()

    task = asyncio.create_task(run(), name="web")
    up = asyncio.create_task(server.up.wait())
    await asyncio.wait({task, up}, return_when=asyncio.FIRST_COMPLETED)
    up.cancel()
    if task.done():
        task.result()  # raises the start error
    log.info("web workspace on http://%s:%s", web.host, web.port)
    return task
