"""The rescue of a dead node's inbox, entry by entry: forwarded to the new owner once, held while
nobody owns the address, answered as not found when held too long, replies to dead askers dropped."""

from __future__ import annotations

import time

import pytest
import trio
from coredis.response.types import StreamPending

from cluster import Node
from cluster.connection import Client
from cluster.keys import INBOX_GROUP
from cluster.rescue import HOLD_FOR, RETIRE_AFTER
from cluster.transport import MESSAGE
from runtime import ActorNotFound
from tests.cluster.echo import Note, Notes, echo_types
from tests.cluster.nodes import echo, running
from tests.cluster.servers import RedisServer

GHOST = "ghost"  # a node that joined, had an inbox and has no liveness key: dead


async def ghost_inbox(node: Node) -> str:
    """The inbox of GHOST, a node that joined once and whose liveness key is gone: dead."""
    inbox = node.keys.inbox(GHOST)
    await node.client.xgroup_create(inbox, INBOX_GROUP, identifier="0", mkstream=True)
    await node.client.sadd(node.keys.nodes(), [GHOST])
    return inbox


async def held(client: Client, inbox: str) -> int:
    """Entries of ``inbox`` taken by a consumer and not acknowledged."""
    summary = await client.xpending(inbox, INBOX_GROUP)
    assert isinstance(summary, StreamPending)
    return summary.pending


async def test_entries_of_a_dead_inbox_are_forwarded_once_held_or_refused(
    redis_server: RedisServer,
) -> None:
    types = echo_types()
    async with running(redis_server.url, "a") as a:
        client = a.node.client
        inbox = await ghost_inbox(a.node)
        old = int((time.time() - HOLD_FOR - 5) * 1000)

        # Sent long ago to an address nobody hosts, by an asker on a: refused as not found.
        reply_to, slot = a.node.registry.open_reply()
        await client.xadd(
            inbox,
            {
                b"k": MESSAGE,
                b"a": b"room/gone",
                b"b": types.encode(Note("x")),
                b"r": reply_to.encode(),
            },
            identifier=f"{old}-0",
        )
        # The same entry twice (a rescuer died after forwarding it once): queued once.
        for _ in range(2):
            await client.xadd(
                inbox,
                {
                    b"k": MESSAGE,
                    b"a": b"room/here",
                    b"b": types.encode(Note("once")),
                    b"o": b"x:1-1",
                },
            )
        # A reply for an asker on a node that is dead too: dropped.
        await client.xadd(inbox, {b"k": b"r", b"a": b"reply/other/1", b"b": types.encode(None)})
        # For an address nobody owns yet, sent just now: held for a later sweep.
        await client.xadd(
            inbox, {b"k": MESSAGE, b"a": b"room/later", b"b": types.encode(Note("later"))}
        )

        await a.node.host(a.supervisor, echo("room/here", "a"))
        with trio.fail_after(5):
            await a.node.rescue.sweep()
            with pytest.raises(ActorNotFound):
                await slot.wait("room/gone", 2)
            assert await a.node.registry.ref("room/here").ask(Notes()) == ("once",)
            assert a.node.rescue.rescued == 4
            assert await held(client, inbox) == 1  # room/later, held by a

            await a.node.host(a.supervisor, echo("room/later", "a"))
            await a.node.rescue.sweep()
            while await a.node.registry.ref("room/later").ask(Notes()) != ("later",):  # noqa: ASYNC110
                await trio.sleep(0.01)
            assert await held(client, inbox) == 0
        assert await a.node.rescue.dead_inboxes() == [GHOST]  # swept, kept for a returning ghost


async def test_two_rescuers_sweeping_one_dead_inbox_at_once_deliver_each_entry_once(
    redis_server: RedisServer,
) -> None:
    types = echo_types()
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        client = a.node.client
        inbox = await ghost_inbox(a.node)
        await a.node.host(a.supervisor, echo("room/here", "a"))
        for n in range(600):  # more than one read's worth for each rescuer
            await client.xadd(
                inbox, {b"k": MESSAGE, b"a": b"room/here", b"b": types.encode(Note(str(n)))}
            )
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for side in (a, b, a, b):
                    nursery.start_soon(side.node.rescue.sweep)
            here = a.node.registry.ref("room/here")
            while await held(client, inbox) or len(await here.ask(Notes())) < 600:
                async with trio.open_nursery() as nursery:  # what one rescuer still held
                    nursery.start_soon(a.node.rescue.sweep)
                    nursery.start_soon(b.node.rescue.sweep)
                await trio.sleep(0.05)
        notes = await here.ask(Notes())
        assert sorted(notes, key=int) == [str(n) for n in range(600)]  # each once
        assert a.node.rescue.rescued > 0 and b.node.rescue.rescued > 0
        assert a.node.rescue.rescued + b.node.rescue.rescued == 600


async def test_a_dead_node_left_with_nothing_to_rescue_is_retired_once_quiet(
    redis_server: RedisServer,
) -> None:
    """Its inbox is removed and its id leaves the set of nodes (issue 18: they were kept for
    ever); a dead node written to recently, or a live one, is kept."""
    types = echo_types()
    async with running(redis_server.url, "a") as a:
        client, keys = a.node.client, a.node.keys
        long_ago = int((time.time() - RETIRE_AFTER - 5) * 1000)
        for ghost in ("old", "recent"):
            await client.xgroup_create(
                keys.inbox(ghost), INBOX_GROUP, identifier="0", mkstream=True
            )
            await client.sadd(keys.nodes(), [ghost])
        # An ask sent long ago to an address nobody hosts: refused as not found, then retired.
        reply_to, slot = a.node.registry.open_reply()
        body = types.encode(Note("x"))
        old_entry = {b"k": MESSAGE, b"a": b"room/gone", b"b": body, b"r": reply_to.encode()}
        await client.xadd(keys.inbox("old"), old_entry, identifier=f"{long_ago}-0")
        await client.xadd(keys.inbox("recent"), {b"k": MESSAGE, b"a": b"room/gone", b"b": body})
        with trio.fail_after(5):
            await a.node.rescue.sweep()
            with pytest.raises(ActorNotFound):
                await slot.wait("room/gone", 2)
        assert not await client.exists([keys.inbox("old")])
        nodes = {m.decode() for m in await client.smembers(keys.nodes())}
        assert nodes == {"a", "recent"}
        assert a.node.rescue.retired == 1
        assert await client.exists([keys.inbox("recent"), keys.inbox("a")]) == 2
        assert await a.node.rescue.dead_nodes() == ["recent"]


async def test_an_entry_for_several_addresses_is_rescued_to_each_once(
    redis_server: RedisServer,
) -> None:
    types = echo_types()
    async with running(redis_server.url, "a") as a:
        client = a.node.client
        inbox = await ghost_inbox(a.node)
        await a.node.host(a.supervisor, echo("room/one", "a"))
        entry = {b"k": MESSAGE, b"a": b"room/one\nroom/two", b"b": types.encode(Note("both"))}
        await client.xadd(inbox, entry)  # type: ignore[arg-type]
        with trio.fail_after(5):
            await a.node.rescue.sweep()  # room/two has no owner yet: the entry stays held
            assert await held(client, inbox) == 1
            await a.node.host(a.supervisor, echo("room/two", "a"))
            await a.node.rescue.sweep()  # room/one's part again: recognised, not queued twice
            for room in ("room/one", "room/two"):
                ref = a.node.registry.ref(room)
                while await ref.ask(Notes()) != ("both",):  # noqa: ASYNC110
                    await trio.sleep(0.01)
            assert await held(client, inbox) == 0
            await trio.sleep(0.1)
            assert await a.node.registry.ref("room/one").ask(Notes()) == ("both",)
