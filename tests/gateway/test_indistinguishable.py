"""Another organisation's waiting area and one that does not exist look the same (issue 15).

Area ids are sequential; when the websocket answered ``forbidden`` for an area that exists and
``not_found`` for one that does not (and named the area), a provider could list every
organisation's areas by counting. Now both get the same code and the same words.
"""

from __future__ import annotations

import pytest

from storage import areas, orgs
from storage.db import open_store
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from tests.web.test_pages import sign_in
from waitroom.loadtest.client import GatewayRefused, connect


async def refusal(client: object, to: str) -> tuple[str, str]:
    with pytest.raises(GatewayRefused) as refused:
        await client.request("area.watch", {}, to)  # type: ignore[attr-defined]
    return refused.value.code, str(refused.value)


async def test_an_area_not_yours_and_a_missing_area_answer_alike(
    waitroom_server: RunningServer,
) -> None:
    async with open_store(waitroom_server.db_path) as store:
        other = await orgs.create_organisation(store, "Another clinic")
        unit = await orgs.create_unit(store, other.id, "Their unit")
        theirs = await areas.create_area(store, unit.id, "Their secret area")
    browser = HttpClient(waitroom_server.base_url)
    await sign_in(browser, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    ws_url = waitroom_server.base_url.replace("http://", "ws://") + "/ws"
    async with connect(ws_url, lambda _t, _b: None, cookie=cookie) as client:
        existing = await refusal(client, f"area/{theirs.id}")
        missing = await refusal(client, "area/999999")
    assert existing == missing
    assert existing[0] == "forbidden"
    assert "Their secret area" not in existing[1]
