"""The workspace's catalogs: every text of the pages is translated, and the compiled catalogs are current."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "helpdesk" / "web" / "locale"


def _texts() -> set[str]:
    found: set[str] = set()
    jinja = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}
    for folder, method, options in (
        (ROOT / "helpdesk" / "web", [("**.py", "python")], {}),
        (ROOT / "templates" / "web", [("**.j2", "jinja2")], {"**.j2": jinja}),
    ):
        for _, _, message, _, _ in extract_from_dir(
            str(folder),
            method,
            options_map=options,
            keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("language", ["ru", "en"])
def test_every_page_text_is_in_the_catalog_and_the_mo_is_compiled_from_the_po(language: str) -> None:
    po_path = LOCALE / language / "LC_MESSAGES" / "messages.po"
    catalog = read_po(io.BytesIO(po_path.read_bytes()), locale=language)
    translated = {m.id: m.string for m in catalog if m.id and m.string}
    texts = _texts()
    assert len(texts) > 40
    assert texts <= set(translated), sorted(texts - set(translated))
    compiled = read_mo(io.BytesIO(po_path.with_suffix(".mo").read_bytes()))
    assert {m.id: m.string for m in compiled if m.id} == translated, "run pybabel compile"
    if language == "ru":
        assert translated["Sign in"] == "Войти"
