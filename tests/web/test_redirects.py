"""The language switch's ``next`` only ever leads to a path on this site (issue 15: open redirect).

Browsers strip tabs and newlines from URLs and treat ``\\`` as ``/``, so ``/%09/evil.example``
becomes ``//evil.example``: the check is on what a browser would make of the value.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from quart_trio import QuartTrio

from web import i18n

EVIL = [
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example/x",
    "\t//evil.example",
    " //evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "evil.example",
    "/\x00/evil.example",
    "/\x7f/evil.example",
    "/%09/evil.example",
    "/%2F/evil.example",
    "/%5Cevil.example",
    "/\u2028/evil.example",
    "",
]

SAFE = ["/", "/w/demo?x=1", "/w/demo#top", "/staff/dashboard", "/w/a%20b"]


def make_app() -> QuartTrio:
    app = QuartTrio(__name__)
    i18n.init_app(app)
    return app


@pytest.mark.parametrize("target", EVIL)
async def test_lang_switch_never_redirects_off_site(target: str) -> None:
    response = await make_app().test_client().get("/lang/en", query_string={"next": target})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", SAFE)
async def test_lang_switch_keeps_same_site_paths(target: str) -> None:
    response = await make_app().test_client().get("/lang/en", query_string={"next": target})
    location = response.headers["Location"]
    assert location == target
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc
