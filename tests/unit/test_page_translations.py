"""The Polish pages are complete and the committed catalog is the one used
(issue 13, item 7).

``api/pages/translations/pl/LC_MESSAGES/messages.po`` is the source and the
compiled ``messages.mo`` beside it is committed (so a fresh clone runs without
a build step): these tests fail when a page string has no Polish translation,
when the ``.mo`` was not recompiled after the ``.po`` changed, when a
translation loses or invents a ``%(name)s`` placeholder, or when a provider's
description text (shown on the pages) is not in the catalog.
"""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from api.pages.views_providers import provider_hint
from ledger.providers import registry

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "api" / "pages"
CATALOG = PAGES / "translations" / "pl" / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "lazy_pgettext": ((1, "c"), 2)}


def _po() -> Catalog:
    with open(CATALOG / "messages.po", "rb") as source:
        return read_po(source, locale="pl")


def _key(msgid: str | tuple[str, ...] | list[str], context: str | None) -> tuple[str | None, str]:
    return context, msgid if isinstance(msgid, str) else msgid[0]


def test_every_page_string_has_a_polish_translation() -> None:
    catalog = _po()
    translated = {_key(m.id, m.context) for m in catalog if m.id and m.string and not m.fuzzy}
    extracted = {
        _key(msgid, context)
        for _file, _line, msgid, _comments, context in extract_from_dir(
            PAGES, [("**.py", "python"), ("templates/**.html", "jinja2")], keywords=KEYWORDS,
        )
    }
    assert sorted(k for k in extracted if k not in translated) == []
    assert all(all(m.string) if isinstance(m.string, tuple) else m.string for m in catalog if m.id)


def test_translations_keep_their_placeholders() -> None:
    for message in _po():
        if not message.id:
            continue
        ids = [str(i) for i in (message.id if isinstance(message.id, (list, tuple)) else (message.id,))]
        strings = [str(s) for s in (message.string if isinstance(message.string, (list, tuple)) else (message.string,))]
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == wanted, message.id
            assert text.count("%%") == ids[0].count("%%"), message.id  # templates format every msgid


def test_the_committed_mo_is_compiled_from_the_po() -> None:
    with open(CATALOG / "messages.mo", "rb") as compiled:
        mo = read_mo(compiled)
    def table(catalog: Catalog) -> dict[object, object]:
        return {(m.context, tuple(m.id) if isinstance(m.id, (list, tuple)) else m.id):
                tuple(m.string) if isinstance(m.string, (list, tuple)) else m.string for m in catalog if m.id}

    assert table(mo) == table(_po())


def test_provider_descriptions_shown_on_pages_are_translated() -> None:
    translated = {m.id: m.string for m in _po() if m.id and not m.context}
    texts = set()
    for cls in registry.PROVIDER_CLASSES:
        texts |= {cls.label, provider_hint(cls.provider), *(f.label for f in cls.credential_fields)}
        if cls.countries_label:
            texts.add(cls.countries_label)
    assert sorted(t for t in texts if t and not translated.get(t)) == []


#: Text a template may show as it is: each language's own name in the switch.
_AS_IS = {"English", "Polski"}


def _bare_texts(template: str) -> list[str]:
    """Words a template shows outside ``{{ _(...) }}``: text between tags and
    the attributes people read (title, placeholder, aria-label, alt)."""
    text = re.sub(r"{#.*?#}", "", template, flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", "", text, flags=re.S)
    text = re.sub(r"{{.*?}}|{%.*?%}", " ", text, flags=re.S)
    found = [m.group(1).strip() for m in re.finditer(r">([^<>]+)<", text)]
    found += [m.group(2) for m in re.finditer(r'\b(title|placeholder|aria-label|alt)="([^"]*)"', text)]
    return [t for t in found if re.search(r"[A-Za-z]{2,}", t) and t not in _AS_IS]


def test_templates_show_no_text_outside_the_catalog() -> None:
    assert _bare_texts('<p title="Held seats">{{ _("Held") }} · version {{ v }}</p>') == ["· version", "Held seats"]
    bare = {path.name: _bare_texts(path.read_text()) for path in sorted((PAGES / "templates").glob("*.html"))}
    assert {name: texts for name, texts in bare.items() if texts} == {}
