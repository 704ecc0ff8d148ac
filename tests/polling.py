"""Polling media counters in browser tests: "starts growing" and "stops and stays stopped".

Both browser suites read `getStats()` counters (through different page helpers) and ask the same
two questions; the answers are the seconds it took, which the tests report and bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

K = TypeVar("K")


def seconds_until(predicate: Callable[[], bool], deadline: float, poll: float, what: str) -> float:
    """Poll ``predicate`` until true; the seconds it took, or an AssertionError after ``deadline``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > deadline:
            raise AssertionError(f"not within {deadline} s: {what}")
        time.sleep(poll)


def seconds_until_grown(
    read: Callable[[], Mapping[K, int]], deadline: float, poll: float, what: str
) -> float:
    """Every counter ``read`` returns grows past its first value within ``deadline``."""
    first = read()
    last = first

    def grown() -> bool:
        nonlocal last
        last = read()
        return all(value > first[key] for key, value in last.items())

    try:
        return seconds_until(grown, deadline, poll, what)
    except AssertionError as failure:
        raise AssertionError(f"{failure}: {dict(first)} -> {dict(last)}") from None


def seconds_until_flat(
    read: Callable[[], object], stop_within: float, flat_for: float, poll: float, what: str
) -> float:
    """The counters stop changing within ``stop_within`` and then stay unchanged for
    ``flat_for``; the seconds until they stopped."""
    start = time.monotonic()
    last = read()
    since = 0.0
    while True:
        time.sleep(poll)
        now = read()
        elapsed = time.monotonic() - start
        if now != last:
            last, since = now, elapsed
        if since > stop_within:
            raise AssertionError(f"{what}: still changing {since:.2f} s after: {now}")
        if elapsed - since >= flat_for:
            return since
