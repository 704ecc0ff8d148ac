"""``media.view`` at the gateway (issue 11): shape and size checked before any actor sees it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.protocol import ProtocolError
from gateway.routes import MAX_VIEW_PINNED, MAX_VIEW_PX, MAX_VIEW_SHOWN, ROUTES, validate_body

ROUTE = ROUTES["media.view"]


def size(w: int = 320, h: int = 180) -> dict[str, int]:
    return {"w": w, "h": h}


def test_a_usable_view_passes() -> None:
    shown = {f"conn-{i}": size() for i in range(MAX_VIEW_SHOWN)}
    validate_body(ROUTE, {"shown": shown, "pinned": ["conn-1"]}, 1)
    validate_body(ROUTE, {"shown": {}}, 1)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_field"),
        ({"shown": []}, "bad_field"),
        ({"shown": {"conn-1": [320, 180]}}, "bad_field"),
        ({"shown": {"conn-1": {"w": 320}}}, "bad_field"),
        ({"shown": {"conn-1": {"w": 320, "h": 180, "x": 1}}}, "bad_field"),
        ({"shown": {"conn-1": {"w": 320.5, "h": 180}}}, "bad_field"),
        ({"shown": {"conn-1": {"w": True, "h": 180}}}, "bad_field"),
        ({"shown": {"conn-1": size(h=-1)}}, "bad_field"),
        ({"shown": {"conn-1": size(w=MAX_VIEW_PX + 1)}}, "bad_field"),
        ({"shown": {"conn 1/../x": size()}}, "bad_field"),
        ({"shown": {"x" * 65: size()}}, "bad_field"),
        ({"shown": {f"conn-{i}": size() for i in range(MAX_VIEW_SHOWN + 1)}}, "bad_field"),
        ({"shown": {}, "pinned": "conn-1"}, "bad_field"),
        ({"shown": {}, "pinned": [1]}, "bad_field"),
        ({"shown": {}, "pinned": ["conn-1"] * (MAX_VIEW_PINNED + 1)}, "bad_field"),
    ],
)
def test_a_malformed_or_oversized_view_is_refused(body: dict[str, Any], code: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        validate_body(ROUTE, body, 7)
    assert refused.value.code == code
