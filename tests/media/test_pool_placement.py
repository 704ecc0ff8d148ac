"""Where the pool places a new call: the worker that forwards least, not the one with fewest peers.

A worker's CPU goes with the packets it forwards (docs/media.md, "When a call outgrows a
worker"). One 60-person call with last-N 9 forwards about 60 x (9 + 3) streams; thirty two-party
calls with as many peers forward 60 x (1 + 1). Counting peers ranked the two alike and broke the
tie on the number of calls, which sent the next call to the worker of the big call (issue 11).
No processes are started: the placement reads only the pool's own bookkeeping.
"""

from __future__ import annotations

from media.pool import MediaPool, _Call, call_cost
from media.worker import WorkerConfig


def test_call_cost_counts_last_n_videos_and_the_loudest_voices() -> None:
    assert call_cost(0, 9, 3) == call_cost(1, 9, 3) == 0
    assert call_cost(2, 9, 3) == 2 * (1 + 1)
    assert call_cost(4, 9, 3) == 4 * (3 + 3)
    assert call_cost(60, 9, 3) == 60 * (9 + 3)
    assert call_cost(60, 3, 3) < call_cost(60, 9, 3)


def test_a_new_call_goes_to_the_worker_that_forwards_least() -> None:
    pool = MediaPool(WorkerConfig(last_n=9, loudest=3), workers=2)
    big, small = pool._workers
    pool._calls["large"] = _Call(big, peers={f"p{i}" for i in range(60)})
    big.calls.add("large")
    for n in range(30):
        pool._calls[f"pair{n}"] = _Call(small, peers={"a", "b"})
        small.calls.add(f"pair{n}")
    assert pool._load(big)[1] == pool._load(small)[1] == 60  # as many peers on each
    assert min(pool._workers, key=pool._load) is small
    # Peers being opened count too: a call about to grow weighs what it will forward.
    pool._calls["pair0"].opening = 60
    assert min(pool._workers, key=pool._load) is big
