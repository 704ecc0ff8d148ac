"""Floods of fake arrivals on a public waiting-area link (issue 15).

About 17 posts a second used to keep an area at its 2,000-caller cap, so real patients were told
it was full. Now one address may arrive 10 times in an area within 10 minutes (a family, a kiosk)
and the 11th gets a clear 429 page; another address is not affected; and an area takes at most
``ARRIVALS_PER_AREA`` arrivals in the window from everyone together.
"""

from __future__ import annotations

import pytest

from actors.waiting import areas
from tests.conftest import RunningServer
from tests.httpclient import HttpClient, Response
from tests.web.test_patient_pages import slug_path

FLOODER = "127.0.0.2"
NEIGHBOUR = "127.0.0.3"


async def arrive(server: RunningServer, source: str, name: str) -> Response:
    client = HttpClient(server.base_url, source_address=source)
    path = slug_path(server)
    form = await client.get(path)
    return await client.post(
        path, {"csrf_token": form.csrf_token(), "name": name, "consent": "yes"}
    )


async def test_the_eleventh_arrival_from_one_address_is_refused_clearly(
    waitroom_server: RunningServer,
) -> None:
    for n in range(areas.ARRIVALS_PER_ADDRESS):
        assert (await arrive(waitroom_server, FLOODER, f"Caller {n}")).status == 200
    refused = await arrive(waitroom_server, FLOODER, "One too many")
    assert refused.status == 429
    assert "Too many arrivals have come from your connection" in refused.text
    assert "data-token" not in refused.text  # nothing was created for it
    assert (await arrive(waitroom_server, NEIGHBOUR, "A real patient")).status == 200


@pytest.fixture
def small_area_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(areas, "ARRIVALS_PER_AREA", 3)
    return 3


async def test_an_area_takes_a_bounded_number_from_everyone(
    small_area_limit: int, waitroom_server: RunningServer
) -> None:
    sources = [f"127.0.1.{n}" for n in range(1, small_area_limit + 2)]
    statuses = [(await arrive(waitroom_server, s, f"Caller {s}")).status for s in sources]
    assert statuses == [200] * small_area_limit + [429]
