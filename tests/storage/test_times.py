"""Stored timestamps: one fixed-width form, read fast, anything else refused (issue 17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from unittest import mock

import pytest

from storage import times
from storage.times import from_db, to_db


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 5, 0, 29, 59, 381278, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),  # whole seconds still carry six zero digits
        datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=3))),
    ],
)
def test_a_stored_moment_reads_back_as_the_same_aware_utc_instant(moment: datetime) -> None:
    text = to_db(moment)
    assert len(text) == 27 and text.endswith("Z")
    back = from_db(text)
    assert back == moment
    assert back.utcoffset() == timedelta(0)


def test_the_fast_read_agrees_with_the_strict_format() -> None:
    text = "2026-12-05T00:29:59.381278Z"
    strict = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    with mock.patch.object(times, "datetime", wraps=datetime) as spy:
        assert from_db(text) == strict
    assert from_db(text).tzinfo == UTC
    assert spy.fromisoformat.called and not spy.strptime.called  # the cheap way was taken


@pytest.mark.parametrize(
    "text",
    [
        "2026-W49-6T00:29:59.381278Z",  # an ISO week date of the same width
        "2026-12-05T00:29:59,381278Z",  # a comma before the fraction
        "2026-12-05T00:29:59.381278+",  # no Z
        "2026-12-05 00:29:59.381278Z",  # a space for the T
        "2026-12-05T00:29:59Z",  # no fraction
        "2026-12-05T00:29:59.381278+00:00",
        "2026-13-05T00:29:59.381278Z",  # no thirteenth month
    ],
)
def test_any_other_form_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        from_db(text)
