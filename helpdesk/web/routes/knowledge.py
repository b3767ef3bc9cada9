"""/kb/…: the knowledge base as staff keep it: experts (load, availability, add, edit, retire), resources
(add, edit, does the URL answer?) and the classifier's labelled examples (list, remove).

Every write is the desk's use-case, validated as `helpdesk kb validate` validates the files; a refused
form comes back with what was typed and the validator's message. Admins only (helpdesk/web/access.py).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from helpdesk.usecases.errors import DeskError
from helpdesk.usecases.labelled_examples import list_examples, remove_example
from helpdesk.usecases.resources import get_resource, list_resources, save_resource
from helpdesk.usecases.roster import experts_with_load, retire_expert, save_expert, set_availability
from helpdesk.web import flash
from helpdesk.web.i18n import gettext as _
from helpdesk.web.templating import page
from helpdesk.web.url_check import check_url
from knowledge import AVAILABILITY, RESOURCE_TYPES, KnowledgeError
from knowledge.roster import split_cell

EXPERT_LISTS = ("countries", "languages", "targets", "core_functions")
EXPERT_TEXTS = ("id", "name", "organisation", "email", "availability", "max_open_tickets")
RESOURCE_LISTS = ("languages", "targets", "core_functions")
RESOURCE_TEXTS = ("id", "title", "url", "type")
MAX_FIELD = 1000  # one form field; ids are kept to 100 by the use-cases' tables
MAX_ID = 100


def _fields(form: FormData, texts: tuple[str, ...], lists: tuple[str, ...]) -> dict[str, Any]:
    """A form as a roster/resources entry: list fields split as a CSV cell is; empty fields left out."""
    fields: dict[str, Any] = {}
    for name in (*texts, *lists):
        value = str(form.get(name) or "").strip()
        if len(value) > MAX_FIELD:
            raise DeskError(_("A field is longer than %(n)s characters.") % {"n": MAX_FIELD})
        if name in lists:
            fields[name] = split_cell(value)
        elif value:
            fields[name] = value
    if len(str(fields.get("id", ""))) > MAX_ID:
        raise DeskError(_("An id is at most %(n)s characters.") % {"n": MAX_ID})
    return fields


def _as_form(entry: dict[str, Any]) -> dict[str, str]:
    return {k: "; ".join(map(str, v)) if isinstance(v, list | tuple) else str(v) for k, v in entry.items()}


def _back(request: Request, path: str, text: str, *, error: bool = False) -> Response:
    flash.say(request, text, error=error)
    return RedirectResponse(path, status_code=303)


# Experts


async def experts_page(request: Request) -> Response:
    return page(
        request,
        "kb/experts",
        experts=await experts_with_load(request.app.state.desk),
        availability=AVAILABILITY,
        message=flash.take(request),
    )


async def expert_form(request: Request) -> Response:
    expert_id = request.path_params.get("expert_id")
    values: dict[str, str] = {"availability": "available", "max_open_tickets": "5"}
    if expert_id is not None:
        found = [e for e in await experts_with_load(request.app.state.desk) if e["id"] == expert_id]
        if not found:
            return page(request, "kb/missing", status_code=404)
        values = _as_form(found[0])
    return page(
        request, "kb/expert_form", values=values, editing=expert_id, availability=AVAILABILITY, error=None
    )


async def expert_save(request: Request) -> Response:
    expert_id = request.path_params.get("expert_id")
    form = await request.form()
    typed = {k: str(form.get(k) or "") for k in (*EXPERT_TEXTS, *EXPERT_LISTS)}
    try:
        fields = _fields(form, EXPERT_TEXTS, EXPERT_LISTS)
        expert = await save_expert(
            request.app.state.desk, fields, actor=request.state.staff.actor, replacing=expert_id
        )
    except (KnowledgeError, DeskError) as refused:
        return page(
            request,
            "kb/expert_form",
            status_code=400,
            values=typed,
            editing=expert_id,
            availability=AVAILABILITY,
            error=str(refused),
        )
    return _back(request, "/kb/experts", _("Expert %(id)s saved.") % {"id": expert.id})


async def expert_availability(request: Request) -> Response:
    form = await request.form()
    try:
        await set_availability(
            request.app.state.desk,
            request.path_params["expert_id"],
            str(form.get("availability") or ""),
            actor=request.state.staff.actor,
        )
    except (KnowledgeError, DeskError) as refused:
        return _back(request, "/kb/experts", str(refused), error=True)
    return _back(request, "/kb/experts", _("Availability changed."))


async def expert_retire(request: Request) -> Response:
    try:
        await retire_expert(
            request.app.state.desk, request.path_params["expert_id"], actor=request.state.staff.actor
        )
    except DeskError as refused:
        return _back(request, "/kb/experts", str(refused), error=True)
    return _back(request, "/kb/experts", _("Expert retired: no new tickets are matched to them."))


# Resources


async def resources_page(request: Request) -> Response:
    return page(
        request,
        "kb/resources",
        resources=await list_resources(request.app.state.desk),
        message=flash.take(request),
    )


async def resource_form(request: Request) -> Response:
    resource_id = request.path_params.get("resource_id")
    values: dict[str, str] = {}
    if resource_id is not None:
        try:
            values = _as_form(await get_resource(request.app.state.desk, resource_id))
        except DeskError:
            return page(request, "kb/missing", status_code=404)
    return page(
        request, "kb/resource_form", values=values, editing=resource_id, types=RESOURCE_TYPES, error=None
    )


async def resource_save(request: Request) -> Response:
    resource_id = request.path_params.get("resource_id")
    form = await request.form()
    typed = {k: str(form.get(k) or "") for k in (*RESOURCE_TEXTS, *RESOURCE_LISTS)}
    try:
        fields = _fields(form, RESOURCE_TEXTS, RESOURCE_LISTS)
        resource = await save_resource(
            request.app.state.desk, fields, actor=request.state.staff.actor, replacing=resource_id
        )
    except (KnowledgeError, DeskError) as refused:
        return page(
            request,
            "kb/resource_form",
            status_code=400,
            values=typed,
            editing=resource_id,
            types=RESOURCE_TYPES,
            error=str(refused),
        )
    return _back(request, "/kb/resources", _("Resource %(id)s saved.") % {"id": resource.id})


async def resource_check(request: Request) -> Response:
    try:
        resource = await get_resource(request.app.state.desk, request.path_params["resource_id"])
    except DeskError as refused:
        return _back(request, "/kb/resources", str(refused), error=True)
    answer = await check_url(resource["url"])
    if answer.ok:
        text = _("%(id)s answers (HTTP %(status)s).") % {"id": resource["id"], "status": answer.status}
    else:
        status = f" (HTTP {answer.status})" if answer.status else ""
        text = _("%(id)s does not answer as it should%(status)s: %(problem)s") % {
            "id": resource["id"],
            "status": status,
            "problem": answer.problem,
        }
    return _back(request, "/kb/resources", text, error=not answer.ok)


# Labelled examples


async def examples_page(request: Request) -> Response:
    return page(
        request,
        "kb/examples",
        examples=await list_examples(request.app.state.desk),
        message=flash.take(request),
    )


async def example_remove(request: Request) -> Response:
    try:
        await remove_example(
            request.app.state.desk, request.path_params["example_id"], actor=request.state.staff.actor
        )
    except DeskError as refused:
        return _back(request, "/kb/examples", str(refused), error=True)
    return _back(request, "/kb/examples", _("Example removed: the classifier no longer votes with it."))


async def kb_home(request: Request) -> Response:
    return RedirectResponse("/kb/experts", status_code=303)


ROUTES = [
    Route("/kb", kb_home, methods=["GET"]),
    Route("/kb/experts", experts_page, methods=["GET"]),
    Route("/kb/experts", expert_save, methods=["POST"]),
    Route("/kb/experts/new", expert_form, methods=["GET"]),
    Route("/kb/experts/{expert_id}", expert_form, methods=["GET"]),
    Route("/kb/experts/{expert_id}", expert_save, methods=["POST"]),
    Route("/kb/experts/{expert_id}/availability", expert_availability, methods=["POST"]),
    Route("/kb/experts/{expert_id}/retire", expert_retire, methods=["POST"]),
    Route("/kb/resources", resources_page, methods=["GET"]),
    Route("/kb/resources", resource_save, methods=["POST"]),
    Route("/kb/resources/new", resource_form, methods=["GET"]),
    Route("/kb/resources/{resource_id}", resource_form, methods=["GET"]),
    Route("/kb/resources/{resource_id}", resource_save, methods=["POST"]),
    Route("/kb/resources/{resource_id}/check", resource_check, methods=["POST"]),
    Route("/kb/examples", examples_page, methods=["GET"]),
    Route("/kb/examples/{example_id:int}/remove", example_remove, methods=["POST"]),
]
