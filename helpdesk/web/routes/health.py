"""/healthz: the workspace answers and the database does (no login, nothing private)."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def healthz(request: Request) -> Response:
    try:
        async with request.app.state.desk.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception:
        return JSONResponse({"status": "database unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


ROUTES = [Route("/healthz", healthz, methods=["GET"])]
