"""/admin/…: staff accounts and roles, dead letters, delivery failures and health. Admins only.

Each action is the same use-case the CLI calls (`helpdesk staff …`, `helpdesk mail dead-letters …`,
`helpdesk health`); the pages add nothing of their own but the forms.
"""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from helpdesk.config import Settings
from helpdesk.health import run_checks
from helpdesk.usecases.dead_letters import DeadLetterNotFound, get_dead_letter, list_dead_letters, summary
from helpdesk.usecases.delivery_failures import list_failed_deliveries, retry_delivery
from helpdesk.usecases.errors import DeskError
from helpdesk.usecases.staff_accounts import (
    ROLES,
    AccountError,
    add_account,
    disable_account,
    list_accounts,
    set_password,
    set_role,
)
from helpdesk.web import flash
from helpdesk.web.i18n import gettext as _
from helpdesk.web.templating import page

RAW_SHOWN = 20_000  # bytes of a dead letter shown as text (escaped); the rest stays in the database


def _settings(request: Request) -> Settings | None:
    return getattr(request.app.state, "settings", None)


def _back(request: Request, path: str, text: str, *, error: bool = False) -> Response:
    flash.say(request, text, error=error)
    return RedirectResponse(path, status_code=303)


async def admin_home(request: Request) -> Response:
    settings = _settings(request)
    checks = await run_checks(settings) if settings is not None else None
    return page(request, "admin/home", checks=checks)


# Staff accounts


async def staff_page(request: Request) -> Response:
    return page(
        request,
        "admin/staff",
        accounts=await list_accounts(request.app.state.desk),
        roles=ROLES,
        message=flash.take(request),
    )


async def staff_add(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email") or "")[:320]
    telegram = str(form.get("telegram_id") or "").strip()
    try:
        if telegram and not telegram.lstrip("-").isdigit():
            raise AccountError(_("A Telegram id is a number."))
        await add_account(
            request.app.state.desk,
            email,
            name=str(form.get("name") or "")[:200],
            role=str(form.get("role") or ""),
            telegram_user_id=int(telegram) if telegram else None,
            password=str(form.get("password") or "") or None,
            actor=request.state.staff.actor,
        )
    except AccountError as refused:
        return _back(request, "/admin/staff", str(refused), error=True)
    return _back(request, "/admin/staff", _("Account %(email)s added.") % {"email": email.strip().lower()})


async def staff_role(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email") or "")
    if email.strip().lower() == request.state.staff.email:
        return _back(request, "/admin/staff", _("Another admin changes your own role."), error=True)
    try:
        await set_role(
            request.app.state.desk, email, str(form.get("role") or ""), actor=request.state.staff.actor
        )
    except AccountError as refused:
        return _back(request, "/admin/staff", str(refused), error=True)
    return _back(request, "/admin/staff", _("Role changed."))


async def staff_disable(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email") or "")
    if email.strip().lower() == request.state.staff.email:
        return _back(request, "/admin/staff", _("Another admin disables your own account."), error=True)
    try:
        await disable_account(request.app.state.desk, email, actor=request.state.staff.actor)
    except AccountError as refused:
        return _back(request, "/admin/staff", str(refused), error=True)
    return _back(request, "/admin/staff", _("Account disabled; its sessions are over."))


async def staff_password(request: Request) -> Response:
    form = await request.form()
    try:
        await set_password(
            request.app.state.desk,
            str(form.get("email") or ""),
            str(form.get("password") or ""),
            actor=request.state.staff.actor,
        )
    except AccountError as refused:
        return _back(request, "/admin/staff", str(refused), error=True)
    return _back(request, "/admin/staff", _("Password set; the account's sessions are over."))


# Dead letters


async def dead_letters_page(request: Request) -> Response:
    every = request.query_params.get("all") == "1"
    return page(
        request,
        "admin/dead_letters",
        letters=await list_dead_letters(request.app.state.desk, include_resolved=every),
        every=every,
        message=flash.take(request),
    )


async def dead_letter_page(request: Request) -> Response:
    try:
        letter = await get_dead_letter(request.app.state.desk, request.path_params["letter_id"])
    except DeadLetterNotFound:
        return page(request, "kb/missing", status_code=404)
    return page(
        request,
        "admin/dead_letter",
        letter=summary(letter),
        raw=letter.raw[:RAW_SHOWN].decode("utf-8", "replace"),
        retry=_settings(request) is not None,
        message=flash.take(request),
    )


async def dead_letter_retry(request: Request) -> Response:
    letter_id = request.path_params["letter_id"]
    path = f"/admin/dead-letters/{letter_id}"
    settings = _settings(request)
    if settings is None:
        return _back(request, path, _("Retrying needs the running service."), error=True)
    # As `helpdesk mail dead-letters retry`: the same guarded parser and receive, in a runtime of its own,
    # but received by the web's desk: inside `helpdesk run` its outbox_written wakes the running delivery
    # worker, so the receipt leaves now rather than at the worker's next poll.
    from helpdesk.email.intake import retry_dead_letter
    from helpdesk.service import open_runtime

    try:
        async with open_runtime(settings, migrate=False) as runtime:
            intake = replace(runtime.mail, desk=request.app.state.desk)
            reference, reason = await retry_dead_letter(intake, letter_id)
    except DeadLetterNotFound:
        return page(request, "kb/missing", status_code=404)
    if reference is None:
        return _back(
            request, path, _("Still cannot be received: %(reason)s") % {"reason": reason}, error=True
        )
    return _back(request, path, _("Received as %(ref)s.") % {"ref": reference})


# Delivery failures


async def deliveries_page(request: Request) -> Response:
    return page(
        request,
        "admin/deliveries",
        items=await list_failed_deliveries(request.app.state.desk),
        message=flash.take(request),
    )


async def delivery_retry(request: Request) -> Response:
    try:
        await retry_delivery(
            request.app.state.desk, request.path_params["item_id"], actor=request.state.staff.actor
        )
    except DeskError as refused:
        return _back(request, "/admin/deliveries", str(refused), error=True)
    return _back(request, "/admin/deliveries", _("Queued again for delivery."))


ROUTES = [
    Route("/admin", admin_home, methods=["GET"]),
    Route("/admin/staff", staff_page, methods=["GET"]),
    Route("/admin/staff", staff_add, methods=["POST"]),
    Route("/admin/staff/role", staff_role, methods=["POST"]),
    Route("/admin/staff/disable", staff_disable, methods=["POST"]),
    Route("/admin/staff/password", staff_password, methods=["POST"]),
    Route("/admin/dead-letters", dead_letters_page, methods=["GET"]),
    Route("/admin/dead-letters/{letter_id:int}", dead_letter_page, methods=["GET"]),
    Route("/admin/dead-letters/{letter_id:int}/retry", dead_letter_retry, methods=["POST"]),
    Route("/admin/deliveries", deliveries_page, methods=["GET"]),
    Route("/admin/deliveries/{item_id:int}/retry", delivery_retry, methods=["POST"]),
]
