"""The intake configuration and answer checks, and the wait estimate (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.ondemand import intake
from actors.ondemand.estimate import MIN_SAMPLES, WINDOW, RecentWaits, typical_wait
from tests.actors.ondemand.world import STEPS


def test_a_good_intake_parses_and_round_trips() -> None:
    steps = intake.parse_steps(STEPS)
    assert [s.title for s in steps] == ["Why you are here", "Consent"]
    assert intake.parse_steps(intake.steps_config(steps)) == steps


@pytest.mark.parametrize(
    "bad",
    [
        "not a list",
        [{"title": "", "fields": [{"key": "a", "label": "A", "kind": "text"}]}],
        [{"title": "T", "fields": []}],
        [{"title": "T", "fields": [{"key": "A b", "label": "A", "kind": "text"}]}],
        [{"title": "T", "fields": [{"key": "a", "label": "A", "kind": "essay"}]}],
        [{"title": "T", "fields": [{"key": "a", "label": "A", "kind": "choice"}]}],
        [{"title": "T", "fields": [{"key": "name", "label": "N", "kind": "text"}]}],
        [
            {"title": "T", "fields": [{"key": "a", "label": "A", "kind": "text"}]},
            {"title": "U", "fields": [{"key": "a", "label": "A", "kind": "text"}]},
        ],
        [{"title": "T", "fields": [{"key": "a", "label": "A", "kind": "text", "required": 1}]}],
        [
            {"title": f"S{n}", "fields": [{"key": f"k{n}", "label": "L", "kind": "text"}]}
            for n in range(21)
        ],
    ],
)
def test_bad_intakes_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        intake.parse_steps(bad)


def test_details_are_checked() -> None:
    assert intake.check_details({"name": " Ada ", "email": "ada@example.org", "extra": "x"}) == {
        "name": "Ada",
        "email": "ada@example.org",
    }
    for bad in ({"name": ""}, {"name": "A", "email": "nope"}, {"name": "A", "phone": "12"}):
        with pytest.raises(ValueError):
            intake.check_details(bad)


def test_estimate_needs_enough_recent_waits() -> None:
    assert typical_wait([10.0] * (MIN_SAMPLES - 1)) is None
    assert typical_wait([10.0, 20.0, 600.0]) == 20.0  # the median: one long wait does not skew it
    waits = RecentWaits()
    for at, wait in ((0.0, 100.0), (1.0, 200.0), (2.0, 300.0)):
        waits.add(at, wait)
    assert waits.estimate(3.0) == 200.0
    assert waits.estimate(3.0 + WINDOW) is None  # too old to say anything about now
