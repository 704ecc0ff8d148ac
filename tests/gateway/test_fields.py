"""Every body field is checked at the boundary, so no client value can crash an actor (issue 15).

``caller.transfer`` with ``target_area="²"`` passed ``str.isdigit()`` in the area and crashed it on
``int()``; four of those in five seconds took the whole server down.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import refusals
from gateway.protocol import ProtocolError
from gateway.routes import MAX_AREA_ID_DIGITS, ROUTES, Field, validate_body

TRANSFER = ROUTES["caller.transfer"]


@pytest.mark.parametrize(
    "target", ["²", "١٢", "１２", "-1", "+1", " 1", "1 ", "1_000", "", "9" * 40, "0x10"]
)
def test_a_target_area_must_be_ascii_digits_in_range(target: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        validate_body(TRANSFER, {"caller_id": "abc", "target_area": target}, 1)
    assert refused.value.code == refusals.BAD_FIELD


def test_good_ids_pass() -> None:
    validate_body(TRANSFER, {"caller_id": "Ab-3_x", "target_area": "12"}, 1)
    validate_body(TRANSFER, {"caller_id": "c1", "target_area": "9" * MAX_AREA_ID_DIGITS}, 1)


@pytest.mark.parametrize("caller_id", ["a b", "a/b", "é", "\x00", "a" * 65, "\ud800"])
def test_a_caller_id_is_a_short_ascii_token(caller_id: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        validate_body(ROUTES["caller.join"], {"caller_id": caller_id}, 1)
    assert refused.value.code == refusals.BAD_FIELD


def test_text_that_cannot_be_utf8_is_refused() -> None:
    """A lone surrogate from JSON would crash the first encode (SQLite, the outbound frame)."""
    with pytest.raises(ProtocolError):
        validate_body(ROUTES["chat.send"], {"text": "hi \ud83d"}, 1)


def test_booleans_are_booleans() -> None:
    route = ROUTES["media.state"]
    for value in (1, 0, "true", None):
        with pytest.raises(ProtocolError):
            validate_body(route, {"audio": value, "video": True}, 1)
    validate_body(route, {"audio": False, "video": True}, 1)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


def _conforms(spec: Field, value: Any) -> bool:
    if spec.kind is object:
        return True
    if spec.kind is bool:
        return isinstance(value, bool)
    if spec.kind is int:  # ondemand.step's step, notices.read's id (issue 14)
        return isinstance(value, int) and not isinstance(value, bool)
    if spec.kind is dict:  # ondemand.step's values, media.view's shown: the actor checks inside
        return isinstance(value, dict)
    if spec.kind is list:  # media.view's pinned: its own check looks inside
        return isinstance(value, list) and (spec.check is None or spec.check(value) is None)
    if not isinstance(value, str) or len(value) > spec.max_len:
        return False
    value.encode("utf-8")  # raises for a lone surrogate: the test then fails loudly
    return spec.pattern is None or spec.pattern.fullmatch(value) is not None


@settings(max_examples=300, deadline=None)
@given(
    route_type=st.sampled_from(sorted(ROUTES)),
    body=st.dictionaries(
        st.sampled_from([*sorted({n for r in ROUTES.values() for n in r.fields}), "x"]), JSON
    ),
)
def test_any_body_is_refused_cleanly_or_every_field_conforms(
    route_type: str, body: dict[str, Any]
) -> None:
    route = ROUTES[route_type]
    try:
        validate_body(route, body, 7)
    except ProtocolError as error:
        assert error.code in (refusals.BAD_FIELD, refusals.MISSING_FIELD)
        return
    for name, spec in route.fields.items():
        if body.get(name) is not None:
            assert _conforms(spec, body[name]), (name, body[name])
