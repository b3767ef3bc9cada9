"""Attachment downloads: always a download with the stored type, never rendered in the workspace."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from helpdesk.usecases.listing import attachment_file
from helpdesk.web.routes.tickets import REFERENCE

# Types a browser would run or render as a page of ours even as a download target; served as bytes.
ACTIVE_TYPES = (
    "text/html",
    "application/xhtml",
    "image/svg",
    "text/xml",
    "application/xml",
    "text/javascript",
    "application/javascript",
)


async def download(request: Request) -> Response:
    reference = request.path_params["reference"].upper()
    if not REFERENCE.match(reference):
        return PlainTextResponse("Not found.", status_code=404)
    found = await attachment_file(request.app.state.desk, reference, request.path_params["attachment_id"])
    if found is None:
        return PlainTextResponse("Not found.", status_code=404)
    content_type = found.content_type.strip().lower() or "application/octet-stream"
    well_formed = "/" in content_type and content_type.isprintable()
    if not well_formed or content_type.startswith(ACTIVE_TYPES):
        content_type = "application/octet-stream"
    plain = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in found.filename)
    fallback = plain[:150]
    return Response(
        found.data,
        media_type=content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{fallback or "attachment"}"; '
            f"filename*=UTF-8''{quote(found.filename[:200], safe='')}",
            "X-Content-Type-Options": "nosniff",
            # Even opened directly, nothing in it may run or load anything.
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


ROUTES = [Route("/tickets/{reference}/attachments/{attachment_id:int}", download, methods=["GET"])]
