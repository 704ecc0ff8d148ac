"""What each open connection costs (issue 17: 10,000 callers waiting on one node, under 64 KiB
each): the outbound mailbox without the base class's unused channel, and no task per connection
waiting for an overflow."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import trio

from actors.inbound import Push
from gateway.connection import OutboundMailbox
from runtime import Registry
from runtime.kernel import Envelope, Mailbox

#: Bytes one empty outbound mailbox may take (it took about 3.4 KiB with the unused channel).
MAX_MAILBOX_BYTES = 1600


def _queue_event(caller: str) -> Envelope:
    return Envelope(Push("queue.caller", {"area": 1, "caller": {"id": caller}}), None)


def test_every_slot_of_the_base_mailbox_is_set() -> None:
    """OutboundMailbox skips Mailbox.__init__: it must still set every slot the base has, or the
    runtime would meet an attribute error the first time it used the missing one."""
    mailbox = OutboundMailbox("conn/t", 4)
    missing = [name for name in Mailbox.__slots__ if not hasattr(mailbox, name)]
    assert missing == []
    registry = Registry()
    registry.register(mailbox)
    assert mailbox.registry is registry and mailbox.kind == "conn"
    mailbox.put(_queue_event("a"))
    assert registry.mailbox_depths() == {"conn": 1}
    mailbox.close()
    mailbox.fail_pending()
    assert mailbox.depth() == 0 and registry.mailbox_depths() == {"conn": 0}


def test_an_empty_outbound_mailbox_is_small() -> None:
    count = 2000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [OutboundMailbox(f"conn/{n}", 4096) for n in range(count)]
        used = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    assert len(kept) == count
    assert used < MAX_MAILBOX_BYTES, f"{used:.0f} bytes per outbound mailbox"


async def test_overflow_calls_back_once_and_refuses_the_entry() -> None:
    calls: list[str] = []
    mailbox = OutboundMailbox("conn/t", 2, lambda: calls.append("full"))
    mailbox.put(_queue_event("a"))
    mailbox.put(_queue_event("b"))
    mailbox.put(_queue_event("a"))  # supersedes a: still two entries, no overflow
    assert calls == []
    for caller in ("c", "d"):
        with pytest.raises(Exception, match="full"):
            mailbox.put(_queue_event(caller))
    assert calls == ["full"] and mailbox.overflowed
    assert mailbox.depth() == 2
    with trio.move_on_after(1):
        assert (await mailbox.get()).message == _queue_event("b").message
