"""A clock for the media worker that moves only when the test moves it (`Worker(clock=...)`)."""

from __future__ import annotations


class StepClock:
    """The worker's ticker and data path read it; the test sets `now`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
