"""The gettext catalogs: every message translated in every language, the .mo files compiled
from their .po, plurals by each language's rule, and every locale's pages in its language and
direction."""

from __future__ import annotations

import string
from datetime import timedelta
from functools import cache
from pathlib import Path

import flask_babel
import pytest
from babel.dates import format_date
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from markupsafe import escape

from tests.fake_klaviyo_fixtures import START, review
from widget import i18n

ROOT = Path(__file__).resolve().parent.parent
# Every language but English has a catalog (English is the msgids themselves).
TRANSLATED = [locale for locale in i18n.LOCALES if locale != "en"]


@cache  # one walk of the tree for all the tests
def source_messages():
    """msgid -> msgid_plural (None for one form), as `pybabel extract -F babel.cfg` finds them."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = {}
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, options_map):
        singular, plural = message if isinstance(message, tuple) else (message, None)
        found[singular] = plural
    return found


def catalog(locale):
    path = i18n.TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po"
    assert path.exists(), f"no catalog for {locale}: {path}"
    with path.open("rb") as po:
        return read_po(po, locale=locale)


def placeholders(text):
    return sorted(name for _, name, _, _ in string.Formatter().parse(text) if name)


def test_extraction_finds_every_message_of_the_tables():
    found = source_messages()
    assert set(found) == set(i18n.MESSAGES.values()) | {s for s, _ in i18n.PLURALS.values()}
    assert {(s, found[s]) for s in found if found[s]} == set(i18n.PLURALS.values())


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_catalog_translates_every_message_with_its_placeholders_and_plural_forms(locale):
    messages = catalog(locale)
    forms = messages.num_plurals
    # Stated, not Babel's default for the language (which counts millions apart in French).
    header = (i18n.TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po").read_text()
    assert f'"Plural-Forms: nplurals={forms};' in header, locale
    problems = []
    for msgid, msgid_plural in source_messages().items():
        message = messages.get(msgid)
        if message is None or message.fuzzy:
            problems.append(f"{'fuzzy' if message else 'missing'}: {msgid!r}")
            continue
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        if (msgid_plural is None) != (not message.pluralizable) or (
                msgid_plural and (message.id[1] != msgid_plural or len(texts) != forms)):
            problems.append(f"plural forms ({forms} by its Plural-Forms): {msgid!r}")
        for text in texts:
            if not text.strip():
                problems.append(f"untranslated: {msgid!r}")
            elif placeholders(text) != placeholders(msgid):
                problems.append(f"placeholders {placeholders(text)}: {msgid!r} -> {text!r}")
    stale = {m.id if isinstance(m.id, str) else m.id[0] for m in messages if m.id} - set(
        source_messages())
    problems += [f"not in the source: {msgid!r}" for msgid in sorted(stale)]
    assert not problems, "\n".join(problems)


def translations(messages):
    """msgid -> translation of a catalog's messages that a .mo holds (not the fuzzy ones)."""
    def key(text):  # a plural's msgid and forms are tuples in a .po, lists from a .mo
        return text if isinstance(text, str) else tuple(text)
    return {key(message.id): key(message.string) for message in messages
            if message.id and not message.fuzzy}


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_compiled_catalog_holds_what_its_po_holds(locale):
    # Compared message by message: a .mo's header carries the date it was compiled on.
    mo = i18n.TRANSLATIONS / locale / "LC_MESSAGES" / "messages.mo"
    assert mo.exists(), f"{mo} is missing: run pybabel compile -d widget/translations"
    with mo.open("rb") as compiled:
        messages = read_mo(compiled)
    po = catalog(locale)
    assert (translations(messages), messages.plural_forms) == (
        translations(po), po.plural_forms), (
        f"{mo} is not current: run pybabel compile -d widget/translations")


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_locale_tables_come_from_the_catalogs(locale):
    translated = translations(catalog(locale))
    table = i18n.strings(locale)
    assert table.keys() == i18n.MESSAGES.keys()
    assert {key: table[key] for key in table} == {
        key: translated.get(msgid) for key, msgid in i18n.MESSAGES.items()}


def test_every_language_of_the_issue_is_offered_and_english_is_the_msgids():
    assert set(i18n.LOCALES) == {"en", "fr", "de", "es", "it", "nl", "pt", "sv", "da", "pl",
                                 "ja", "ar"}
    assert i18n.strings("en") == i18n.MESSAGES and i18n.strings("xx") == i18n.MESSAGES


@pytest.mark.parametrize(("number", "form"), [(1, 0), (2, 1), (4, 1), (5, 2), (12, 2),
                                              (22, 1), (25, 2), (0, 2), (1001, 2)])
def test_polish_picks_the_plural_form_of_each_number(number, form):
    forms = catalog("pl").get("{count} review").string
    assert len(forms) == 3
    assert i18n.plural("pl", "count", number) == forms[form].format(
        count=format_decimal(number, locale="pl"))


@pytest.mark.parametrize(("number", "form"), [(0, 0), (1, 1), (2, 2), (3, 3), (10, 3),
                                              (11, 4), (99, 4), (100, 5), (102, 5), (103, 3)])
def test_arabic_picks_the_plural_form_of_each_number(number, form):
    forms = catalog("ar").get("{count} review").string
    assert len(forms) == 6
    assert i18n.plural("ar", "count", number) == forms[form].format(
        count=format_decimal(number, locale="ar"))


def test_a_plural_writes_its_number_as_the_locale_writes_numbers():
    assert i18n.plural("en", "count", 1) == "1 review"
    assert i18n.plural("en", "count", 1234) == "1,234 reviews"
    assert i18n.plural("de", "count", 1234) == "1.234 Bewertungen"
    assert i18n.plural("fr", "count", 0) == "0 avis"  # French counts zero as one
    assert i18n.plural("fr", "photo_count", 0) == "0 photo jointe."
    assert i18n.plural("fr", "photo_count", 2) == "2 photos jointes."
    assert i18n.plural("es", "photos_hint", 1).startswith("Hasta 1 foto ")


def test_only_arabic_is_written_right_to_left():
    assert [locale for locale in i18n.LOCALES if i18n.direction(locale) == "rtl"] == ["ar"]
    assert i18n.direction("xx") == "ltr"


def test_flask_babel_chooses_the_locale_as_the_pages_do(app):
    for query, header, expected in [("?locale=fr-CA", "de", "fr"), ("", "de-DE,de;q=0.9", "de"),
                                    ("?locale=ko", "ja;q=0.8", "ja"), ("", "ko", "en")]:
        with app.test_request_context(f"/embed{query}", headers={"Accept-Language": header}):
            assert str(flask_babel.get_locale()) == expected
            assert i18n.request_locale() == expected


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_every_locale_renders_the_form_and_the_display_in_its_language_and_direction(
        app, locale):
    app.extensions["mirror"].upsert([review("r1", day=40, rating=4, author="Ann")])
    client = app.test_client()
    opening = f'<html lang="{locale}" dir="{i18n.direction(locale)}"'
    t = i18n.strings(locale)
    form = client.get(f"/embed?product_id=7549950034135&locale={locale}")
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert opening in html and str(escape(t["heading"])) in html
    shown = client.get(f"/reviews?product_id=7549950034135&locale={locale}")
    assert shown.status_code == 200
    html = shown.get_data(as_text=True)
    assert opening in html and str(escape(t["reviews_heading"])) in html
    assert str(escape(i18n.plural(locale, "count", 1))) in html
    written = format_date(START + timedelta(days=40, minutes=280), format="medium",
                          locale=locale)  # as review() dates the review of day 40
    assert "Ann" in html and f">{escape(written)}</time>" in html
    demo = client.get(f"/?locale={locale}").get_data(as_text=True)
    assert opening in demo and str(escape(t["demo_title"])) in demo


def test_the_arabic_pages_run_right_to_left(client):
    for path in ("/embed?product_id=42&locale=ar", "/reviews?product_id=42&locale=ar",
                 "/embed?product_id=42&integration=magento&locale=ar"):
        assert '<html lang="ar" dir="rtl"' in client.get(path).get_data(as_text=True), path
