"""Fixtures for the media tests: a worker on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from media.worker import MediaEvent, Worker, WorkerConfig


class RecordingWorker(Worker):
    """A worker that keeps the events it emits, for assertions."""

    events: list[MediaEvent]


@pytest.fixture
async def worker() -> AsyncIterator[RecordingWorker]:
    events: list[MediaEvent] = []
    w = RecordingWorker(
        WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"),
        on_event=events.append,
    )
    w.events = events
    async with trio.open_nursery() as nursery:
        await nursery.start(w.run)
        yield w
        nursery.cancel_scope.cancel()
