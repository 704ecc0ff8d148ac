"""The caller pages rendered once per area, language and variant, then filled in per request.

Every arrival shows two of these pages (the form, then the waiting page), and Jinja was about a
tenth of the server's samples at 40 arrivals/s (issue 17). What differs between two callers of
one area is only the CSRF token, the room token and the ICE servers (fresh TURN credentials): a
page is rendered with stand-ins for them and each request swaps in its own, escaped as the
template would. The key holds everything else a page shows (the template, the locale, the path,
the area as its actor described it, the template's other values).

Pure: no Quart and no Trio, so both the Quart views (:mod:`web.patient`, which render and store)
and the arrival's lean path (:mod:`web.arrival_path`, which only reads) use the same keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from markupsafe import escape

from actors.messages import AreaPublic

#: Rendered pages kept; the oldest half goes when it is full.
MAX_CACHED_PAGES = 512
#: Stand-ins rendered into a cached page where each request's own values go (never valid values:
#: a CSRF token, a room token and ICE JSON never contain ``~``).
CSRF_MARK = "~wr-csrf~"
TOKEN_MARK = "~wr-token~"
ICE_MARK = "~wr-ice~"

FORM_TEMPLATE = "patient/arrive.html"
WAITING_TEMPLATE = "patient/waiting.html"

#: Input type per arrival-form field kind (``reason`` becomes a textarea in the template).
INPUT_TYPES = {"name": "text", "dob": "date", "phone": "tel", "reason": "text", "custom": "text"}
AUTOCOMPLETE = {"name": "name", "dob": "bday", "phone": "tel"}

#: The empty arrival form's other template values (a form with values or an error is rendered
#: for its request and never cached).
EMPTY_FORM: dict[str, Any] = {
    "values": {},
    "error": None,
    "input_types": INPUT_TYPES,
    "autocomplete": AUTOCOMPLETE,
    "next_opening": None,
}
#: The waiting page an arrival gets: its room token goes where the stand-in is.
WAITING_WITH_TOKEN: dict[str, Any] = {"token": TOKEN_MARK}

Key = tuple[str, ...]


def key(template: str, locale: str, path: str, info: AreaPublic, context: dict[str, Any]) -> Key:
    """What a cached page depends on. ``next_opening`` moves with the clock while an area is
    open, and neither page shows it then."""
    shown = dataclasses.replace(info, next_opening=None) if info.open_now else info
    return (template, locale, path, repr(shown), repr(context))


def store(cache: dict[Key, str], page_key: Key, page: str) -> None:
    if len(cache) >= MAX_CACHED_PAGES:
        for old in list(cache)[: MAX_CACHED_PAGES // 2]:
            del cache[old]
    cache[page_key] = page


def fill(
    page: str,
    csrf_token: Callable[[], str],
    ice_json: Callable[[], str],
    room_token: str | None = None,
) -> str:
    """This request's own values in place of the stand-ins. The CSRF token and the ICE servers
    (``ice_json`` already made safe for HTML, as the template's ``tojson`` would) are asked for
    only by a page that shows them: a new token means a new cookie, and TURN credentials are
    made fresh for each page."""
    if CSRF_MARK in page:
        page = page.replace(CSRF_MARK, str(escape(csrf_token())))
    if ICE_MARK in page:
        page = page.replace(f'"{ICE_MARK}"', ice_json())
    if room_token is not None:
        page = page.replace(TOKEN_MARK, str(escape(room_token)))
    return page
