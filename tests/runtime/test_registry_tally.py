"""The registry's per-kind actor and queue tallies match a walk of every mailbox, whatever happens.

``/metrics`` reads these tallies instead of walking the mailboxes (issue 17: a scrape must cost the
same at 10 actors and at 10,000), so they must never drift: puts, takes, the held front envelope,
re-registration after a restart, unregistering with messages still queued, and draining.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import Registry
from runtime.kernel import Envelope, Mailbox

ADDRESSES = ("room/1", "room/2", "conn/1", "area/7")
CAPACITY = 4

Operation = tuple[str, int]
operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "get", "hold", "front", "register", "unregister", "drain", "new"]),
        st.integers(0, len(ADDRESSES) - 1),
    ),
    max_size=60,
)


def walked(registry: Registry, mailboxes: dict[str, Mailbox]) -> tuple[Counter[str], Counter[str]]:
    """The figures the old code computed by walking every registered mailbox."""
    kinds: Counter[str] = Counter()
    depths: Counter[str] = Counter()
    for address, mailbox in mailboxes.items():
        if address in registry:
            kinds[mailbox.kind] += 1
            depths[mailbox.kind] += mailbox.depth()
    return kinds, depths


@settings(max_examples=200, deadline=None)
@given(operations)
def test_tallies_match_a_walk(ops: list[Operation]) -> None:
    registry = Registry()
    mailboxes: dict[str, Mailbox] = {}
    for name, index in ops:
        address = ADDRESSES[index]
        mailbox = mailboxes.get(address)
        if name == "new" or mailbox is None:
            if mailbox is not None and address in registry:
                registry.unregister(mailbox)
            mailbox = mailboxes[address] = Mailbox(address, CAPACITY)
            registry.register(mailbox)
            continue
        if name == "put" and not mailbox.closed and mailbox.depth() < CAPACITY:
            mailbox.put(Envelope(index, None))
        elif name == "get":
            mailbox.get_nowait()
        elif name == "hold" and mailbox.front is None:
            envelope = mailbox.get_nowait()
            if envelope is not None:
                mailbox.hold_front(envelope)
        elif name == "front":
            mailbox.take_front()
        elif name == "register":
            registry.register(mailbox)  # the same mailbox again, as after a restart
        elif name == "unregister":
            registry.unregister(mailbox)
        elif name == "drain":
            mailbox.close()
            mailbox.fail_pending()
        kinds, depths = walked(registry, mailboxes)
        assert registry.count_by_kind() == kinds
        assert {k: v for k, v in registry.mailbox_depths().items() if v} == {
            k: v for k, v in depths.items() if v
        }
