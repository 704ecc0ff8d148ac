"""Languages for caller pages, leaflets, emails and texts: Babel gettext catalogues per request.

Catalogues live in ``web/locales/<code>/LC_MESSAGES/messages.po`` and are compiled in memory when
the process starts (no ``.mo`` files in the tree, so a catalogue can never be stale against its
``.po``). The locale of a request is, in order: the ``waitroom_lang`` cookie set by the visible
switch (``GET /lang/<code>?next=...``), the browser's ``Accept-Language``, else English.

The pseudo-locale ``xx`` is generated from ``messages.pot`` by decorating every msgid
("Waiting" -> "[Ŵàîţîñĝ]"); it is only offered when the app's ``WAITROOM_PSEUDO_LOCALE`` is set,
and a test walks the caller pages in it to find any visible string that bypassed the catalogue.

Python code calls :func:`gettext` / :func:`ngettext` (``_`` is an alias) inside a request, or
:func:`translations_for` with an explicit locale (leaflets, emails, texts sent in the background).
"""

from __future__ import annotations

import functools
import io
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from babel import Locale, dates
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from quart import Blueprint, Quart, current_app, g, redirect, request
from werkzeug.wrappers import Response as WerkzeugResponse

LOCALES_DIR = Path(__file__).parent / "locales"
TEMPLATE_PATH = LOCALES_DIR / "messages.pot"
DEFAULT_LOCALE = "en"
#: Languages offered to callers, in the order the switch shows them.
LOCALES: tuple[str, ...] = ("en", "uk")
PSEUDO_LOCALE = "xx"
LANG_COOKIE = "waitroom_lang"
#: A chosen language is kept for a year: callers come back for follow-up appointments.
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
#: Longest ``Accept-Language`` header looked at; browsers send a few dozen bytes.
MAX_ACCEPT_LANGUAGE = 512

#: Pseudo-locale accents: every ASCII letter becomes a look-alike, so unmarked text stands out.
_PSEUDO_MAP = str.maketrans(
    "AaCcDdEeGgHhIiJjKkLlNnOoRrSsTtUuWwYyZz",
    "ÀàÇçÐðÉéĜĝĤĥÎîĴĵĶķĻļÑñÖöŔŕŠšŢţÛûŴŵÝýŽž",
)


@dataclass(frozen=True)
class Language:
    code: str
    #: The language's own name for itself, as the switch shows it ("Українська").
    native_name: str


def pseudo_text(text: str) -> str:
    """Decorate a msgid for the pseudo-locale, leaving ``%(name)s`` / ``{name}`` placeholders."""
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%" and text.startswith("%(", i):
            end = text.find(")", i)
            if end != -1 and end + 1 < len(text):
                out.append(text[i : end + 2])
                i = end + 2
                continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        out.append(ch if depth else ch.translate(_PSEUDO_MAP))
        i += 1
    return "[" + "".join(out) + "]"


def _compile(catalog: Catalog) -> Translations:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain="messages")


def _pseudo_catalog() -> Catalog:
    with TEMPLATE_PATH.open("rb") as fp:
        template = read_po(fp)
    catalog = Catalog(locale="en", domain="messages")
    for message in template:
        if not message.id:
            continue
        if isinstance(message.id, str):
            catalog.add(message.id, pseudo_text(message.id))
        else:
            catalog.add(message.id, tuple(pseudo_text(str(part)) for part in message.id))
    return catalog


@functools.cache
def translations_for(locale: str) -> Translations:
    """The compiled catalogue of ``locale`` (English, i.e. the msgids, for anything unknown)."""
    if locale == PSEUDO_LOCALE:
        return _compile(_pseudo_catalog())
    po_path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    if locale == DEFAULT_LOCALE or not po_path.is_file():
        return Translations()
    with po_path.open("rb") as fp:
        return _compile(read_po(fp, locale=locale))


def _pseudo_enabled() -> bool:
    try:
        return bool(current_app.config.get("WAITROOM_PSEUDO_LOCALE", False))
    except RuntimeError:
        return False


def available_locales() -> tuple[str, ...]:
    return (*LOCALES, PSEUDO_LOCALE) if _pseudo_enabled() else LOCALES


def languages() -> list[Language]:
    """Template global for the language switch."""
    return [
        Language(code, "[Pseudo]" if code == PSEUDO_LOCALE else _native_name(code))
        for code in available_locales()
    ]


def _native_name(code: str) -> str:
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


def _from_accept_language(header: str) -> str | None:
    """The best offered locale for an ``Accept-Language`` header, by q-value then order."""
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:MAX_ACCEPT_LANGUAGE].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().replace("_", "-").split("-")[0]
        if primary in LOCALES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else None


def negotiate_locale() -> str:
    """The locale of the current request: cookie, then ``Accept-Language``, then English."""
    return locale_for(
        request.cookies.get(LANG_COOKIE, ""), request.headers.get("Accept-Language", "")
    )


def locale_for(chosen: str, accept_language: str) -> str:
    """`negotiate_locale` from the language cookie's value and the ``Accept-Language`` header."""
    if chosen in available_locales():
        return chosen
    return _from_accept_language(accept_language) or DEFAULT_LOCALE


def current_locale() -> str:
    """The request's locale (English outside a request)."""
    try:
        locale: str = g.get("locale", DEFAULT_LOCALE)
    except RuntimeError:
        return DEFAULT_LOCALE
    return locale


def _translations() -> Translations:
    return translations_for(current_locale())


def gettext(message: str, **variables: Any) -> str:
    """Translate ``message`` for this request; ``%(name)s`` placeholders filled from keywords."""
    text: str = _translations().ugettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    """Plural-aware translation; ``%(num)s`` is ``n`` unless given."""
    text: str = _translations().ungettext(singular, plural, n)
    return text % {"num": n, **variables}


_ = gettext


def N_(text: str) -> str:
    """Mark ``text`` for the catalogue without translating it here; it is translated where shown
    (``{{ _(title) }}`` in a template), so module-level constants can hold msgids."""
    return text


#: Arrival-form labels that storage's default form and the demo seed use: an area that keeps them
#: shows them in the caller's language (labels an admin types are shown as typed).
STANDARD_FIELD_LABELS = (
    N_("Name"),
    N_("Date of birth"),
    N_("Phone number"),
    N_("Reason for your visit"),
)


def _template_ngettext(singular: str, plural: str, n: int) -> str:
    """For Jinja's newstyle gettext, which fills the placeholders itself."""
    text: str = _translations().ungettext(singular, plural, n)
    return text


def _babel_locale(locale: str | None) -> str:
    code = locale or current_locale()
    return DEFAULT_LOCALE if code == PSEUDO_LOCALE else code


def format_datetime(
    value: datetime, time_zone: str, fmt: str = "medium", locale: str | None = None
) -> str:
    """A date and time on the area's clock, written the locale's way."""
    return dates.format_datetime(
        value, fmt, tzinfo=ZoneInfo(time_zone), locale=_babel_locale(locale)
    )


def format_time(value: datetime, time_zone: str, locale: str | None = None) -> str:
    return dates.format_time(
        value, "short", tzinfo=ZoneInfo(time_zone), locale=_babel_locale(locale)
    )


def format_date(value: datetime, time_zone: str, locale: str | None = None) -> str:
    local = value.astimezone(ZoneInfo(time_zone)).date()
    return dates.format_date(local, "full", locale=_babel_locale(locale))


def format_duration(seconds: float, locale: str | None = None) -> str:
    """ "5 minutes", "1 година": rounded the way a person would say it."""
    return dates.format_timedelta(
        timedelta(seconds=seconds), threshold=1.0, locale=_babel_locale(locale)
    )


def weekday_name(weekday: int, locale: str | None = None) -> str:
    """Monday is 0, as in :mod:`datetime`; the locale's standalone wide name ("понеділок")."""
    names = Locale.parse(_babel_locale(locale)).days["stand-alone"]["wide"]
    name: str = names[weekday]
    return name[:1].upper() + name[1:]


blueprint = Blueprint("i18n", __name__)


def _is_unsafe_char(ch: str) -> bool:
    """Control, separator or format characters: browsers strip some (tab, newline) from URLs."""
    return unicodedata.category(ch)[0] in "CZ" and ch != " "


def _safe_next(target: str) -> str:
    """Only a path on this site: never ``//evil.example``, an absolute URL or a look-alike.

    Browsers drop tabs and newlines and read ``\\`` as ``/``, so ``/\t/evil.example`` is
    ``//evil.example`` to them; the value is judged raw and percent-decoded, and refused if either
    form has a control character or backslash, is scheme-relative, or has a scheme or host.
    """
    for form in (target, unquote(target)):
        if (
            not form.startswith("/")
            or form.startswith("//")
            or "\\" in form
            or any(_is_unsafe_char(ch) for ch in form)
        ):
            return "/"
        parts = urlsplit(form)
        if parts.scheme or parts.netloc:
            return "/"
    return target


@blueprint.get("/lang/<code>")
async def switch(code: str) -> WerkzeugResponse:
    """The visible language switch: remember the choice in a cookie and go back."""
    response = redirect(_safe_next(request.args.get("next", "/")), code=303)
    if code in available_locales():
        response.set_cookie(
            LANG_COOKIE,
            code,
            max_age=LANG_COOKIE_MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=request.scheme == "https",
            path="/",
        )
    return response


async def _choose_locale() -> None:
    g.locale = negotiate_locale()


def init_app(app: Quart) -> None:
    """Install gettext into Jinja, pick the locale per request, add the switch and formatters.

    Idempotent, so a test may call it on an app the factory already set up.
    """
    if app.extensions.get("waitroom.i18n"):
        return
    app.extensions["waitroom.i18n"] = True
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext, _template_ngettext, newstyle=True
    )
    app.before_request(_choose_locale)
    app.add_template_global(languages, "languages")
    app.add_template_global(current_locale, "current_locale")
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(format_time, "time")
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(weekday_name, "weekday")
    app.register_blueprint(blueprint)
