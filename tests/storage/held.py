"""A store job that holds the connection in the worker thread until the test lets it go.

It stands where a slow query would, without a real sleep: the test knows when the job is in the
thread (``started``) and decides when it ends (``release``), so what queues behind it is exact.
"""

from __future__ import annotations

import threading

import trio
from sqlite_utils import Database

HOLD_LIMIT = 10.0
"""Real seconds the job waits to be released before failing (reached only if a test is broken,
or if the loop cannot run while the job holds the thread)."""


class HeldJob:
    """``await store.run(job)``: signals ``started`` from the worker thread, waits for ``release()``."""

    def __init__(self) -> None:
        self.started = trio.Event()
        self._released = threading.Event()

    def __call__(self, db: Database) -> str:
        trio.from_thread.run_sync(self.started.set)
        if not self._released.wait(HOLD_LIMIT):
            raise TimeoutError("the held job was never released")
        return "released"

    def release(self) -> None:
        self._released.set()
