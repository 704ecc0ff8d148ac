"""What a long-lived actor keeps alive: the cyclic GC walks it on every full collection.

At 10,000 waiting callers a full collection walks every object each caller's actors and
connection hold (issue 17: the longest loop stall is that walk). These guard what was cut: an
actor no longer keeps the task that started it, and a mailbox is a few objects, not a channel.
"""

from __future__ import annotations

import gc

import pytest
import trio
import trio.testing

from runtime import (
    Actor,
    ChildSpec,
    Envelope,
    Mailbox,
    MailboxFull,
    Registry,
    Restart,
    Supervisor,
)

STARTER = "the task that started the actor"


class Idle(Actor):
    async def handle(self, message: object) -> object:
        return message


def _tasks_named(name: str) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, trio.lowlevel.Task) and o.name == name)


async def test_a_started_actor_does_not_keep_the_task_that_started_it() -> None:
    registry = Registry()
    supervisor = Supervisor(registry, "footprint")
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)

        async def starter() -> None:
            await supervisor.start_child(ChildSpec("idle/1", Idle, Restart.TRANSIENT))

        async with trio.open_nursery() as starting:
            starting.start_soon(starter, name=STARTER)
        assert await registry.ref("idle/1").ask("still here", timeout=5) == "still here"
        # Before: the child's task status held the nursery ``start`` opened in the starter's
        # task, so the finished starter (its context, cancel status, sets) lived on with it.
        assert _tasks_named(STARTER) == 0
        nursery.cancel_scope.cancel()


async def test_an_actor_run_without_a_supervisor_does_not_keep_its_starter_either() -> None:
    registry = Registry()
    mailbox = Mailbox("idle/2")
    registry.register(mailbox)
    async with trio.open_nursery() as nursery:
        actor = Idle()
        actor.address, actor.registry = mailbox.address, registry

        async def starter() -> None:
            await nursery.start(actor.run_loop, mailbox)

        async with trio.open_nursery() as starting:
            starting.start_soon(starter, name=STARTER)
        assert _tasks_named(STARTER) == 0
        nursery.cancel_scope.cancel()


def test_an_empty_mailbox_is_five_tracked_objects() -> None:
    gc.collect()
    before = len(gc.get_objects())
    kept = [Mailbox(f"idle/{n}") for n in range(1000)]
    per_mailbox = (len(gc.get_objects()) - before - 1) / len(kept)  # the list itself
    # The mailbox, its deque, its parking lot and the lot's OrderedDict and list: 5, where the
    # Trio memory channel pair and the Event it had were 11.
    assert per_mailbox <= 5, per_mailbox


async def test_a_mailbox_wakes_its_reader_and_ends_it_once_closed_and_drained() -> None:
    mailbox = Mailbox("idle/3", capacity=2)
    taken: list[object] = []

    async def reader() -> None:
        while True:
            try:
                envelope = await mailbox.get()
            except trio.EndOfChannel:
                taken.append("end")
                return
            taken.append(envelope.message)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            mailbox.put(Envelope("a", None))
            mailbox.put(Envelope("b", None))
            with pytest.raises(MailboxFull):
                mailbox.put(Envelope("c", None))
            await trio.testing.wait_all_tasks_blocked()
            mailbox.close()
    assert taken == ["a", "b", "end"]
    assert mailbox.depth() == 0
