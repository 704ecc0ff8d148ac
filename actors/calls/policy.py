"""What one kind of call decides, as a small object the call core asks: a :class:`CallPolicy`.

Presence, chat, hold, media signalling, the limit and the call's state are the same in every kind
of call and live in the core (``core.Call``). What differs between a caller's room, a group
consultation, a breakout room, a meeting room, a user room and a Consult Now call is listed here,
and only here: who may enter, how many, for whom the call is held (who stays through a hold, and
whom the call waits for when they are gone), what a hold or an end asks of the world outside,
what is stored, and who is told. ``docs/lifecycle.md`` has the table of what each kind sets.

The core calls these methods from its mailbox loop, one message at a time, so a policy keeps its
own state without locks. Hooks may await storage; they tell other actors, never ask them, except
where the method says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from actors.calls.presence import ParticipantKind, Present
from actors.calls.state import CallState
from actors.inbound import Inbound
from actors.principal import Principal

if TYPE_CHECKING:
    from actors.calls.core import Call


class CallPolicy(Protocol):
    """The decisions and side effects of one kind of call (see the module docstring)."""

    #: Most people in the call at once, counting each person once whatever their tabs.
    limit: int

    @property
    def grace(self) -> float | None:
        """Seconds the call waits for the people it is held for once none of them is connected,
        then it is abandoned (:meth:`abandoned`); ``None``: it never ends for their absence."""
        ...

    async def restore(self) -> CallState:
        """Load what the policy needs (first start and every restart); the state to start in.

        Raise a ``Refusal`` when the call must not run (it has ended in storage).
        """
        ...

    def admit(self, principal: Principal, state: CallState) -> ParticipantKind:
        """Whether ``principal`` may enter now, and as what; raise a ``Refusal`` if not.

        The limit is the core's: it refuses ``call_full`` after this, except for the people the
        call is held for (:meth:`holds_for`), who always have their place.
        """
        ...

    def holds_for(self, person: Present) -> bool:
        """Whether the call is held for this person: they stay through a hold, keep their place
        whatever the limit, and their absence starts the grace."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ``room.state`` shows besides the call's id, state and participants."""
        ...

    async def entered(self, call: Call, person: Present) -> None:
        """``person`` has just entered (the core has added them; nobody is told yet)."""
        ...

    async def left(self, call: Call, person: Present) -> None:
        """``person`` has just left (removed, media closed; the others are told after this)."""
        ...

    async def hold_requested(self, call: Call, request: Inbound) -> None:
        """A participant pressed hold (``call.hold``). The policy decides; the hold itself happens
        when the call is told to hold (:meth:`Call.hold`). May ask the call's owner."""
        ...

    async def holding(self, call: Call) -> None:
        """The call is going on hold (state already ``on_hold``; everyone still present)."""
        ...

    async def held(self, call: Call) -> None:
        """The call is on hold: everyone it is not held for has left."""
        ...

    async def end_requested(self, call: Call, request: Inbound) -> str:
        """A participant ended the call (``call.end``): record it; the reason the call ends with."""
        ...

    async def abandoned(self, call: Call) -> str:
        """The grace ran out: record it; the reason the call ends with."""
        ...

    async def closing(self, call: Call, reason: str) -> None:
        """The call is ending (state ``ended``): release what is stored (tokens, records) before
        anyone is told, so a late click already finds the call closed."""
        ...

    def closed(self, call: Call, reason: str) -> None:
        """The call has ended and everyone is out: tell whoever opened it."""
        ...
