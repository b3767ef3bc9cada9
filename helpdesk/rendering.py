"""Jinja2 templates from the `templates` package (found in a wheel as well as in a checkout)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateNotFound, select_autoescape

LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "ru"  # the Centre's working language with most Parties


class _PackageLoader(BaseLoader):
    """Reads templates through importlib.resources, so zipped or wheel installs work too."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Any]:
        resource = files("templates")
        for part in template.split("/"):
            resource = resource / part
        if not resource.is_file():
            raise TemplateNotFound(template)
        source = resource.read_text(encoding="utf-8")
        return source, template, lambda: True


@cache
def environment() -> Environment:
    return Environment(
        loader=_PackageLoader(),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def supported_language(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def render(name: str, language: str | None = None, /, **context: Any) -> str:
    """Render `name` with `{lang}` filled in, e.g. render("email/ack.{lang}.txt.j2", "ru", ...)."""
    template = environment().get_template(name.format(lang=supported_language(language)))
    return template.render(**context).strip() + "\n"
