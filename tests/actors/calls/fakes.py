"""Stand-ins for the call core's tests: a policy with no storage and a media port that answers
when the test lets it. Both implement the real protocols (``CallPolicy``, ``MediaPort``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from actors.calls.core import Call
from actors.calls.presence import ParticipantKind, Present
from actors.calls.state import CallState
from actors.inbound import Inbound
from actors.principal import Principal
from runtime.errors import Refusal


@dataclass
class OpenPolicy:
    """Everyone may enter as what their principal says; the call is held for its caller."""

    limit: int = 6
    wait: float | None = None
    initial: CallState = CallState.IN_CALL
    events: list[str] = field(default_factory=list)
    ended: trio.Event = field(default_factory=trio.Event)
    ended_at: float | None = None

    @property
    def grace(self) -> float | None:
        return self.wait

    async def restore(self) -> CallState:
        return self.initial

    def admit(self, principal: Principal, state: CallState) -> ParticipantKind:
        if principal.kind == "nobody":
            raise Refusal("forbidden", "not you")
        return ParticipantKind(principal.kind)

    def holds_for(self, person: Present) -> bool:
        return person.kind is ParticipantKind.CALLER

    def describe(self) -> dict[str, Any]:
        return {"kind": "test"}

    async def entered(self, call: Call, person: Present) -> None:
        self.events.append(f"entered {person.conn}")

    async def left(self, call: Call, person: Present) -> None:
        self.events.append(f"left {person.conn}")

    async def hold_requested(self, call: Call, request: Inbound) -> None:
        await call.hold()  # a kind of call whose hold needs nobody's consent

    async def holding(self, call: Call) -> None:
        self.events.append("holding")

    async def held(self, call: Call) -> None:
        self.events.append("held")

    async def end_requested(self, call: Call, request: Inbound) -> str:
        return "ended"

    async def abandoned(self, call: Call) -> str:
        self.events.append("abandoned")
        return "left"

    async def closing(self, call: Call, reason: str) -> None:
        self.events.append(f"closing {reason}")

    def closed(self, call: Call, reason: str) -> None:
        self.events.append(f"closed {reason}")
        self.ended_at = trio.current_time()
        self.ended.set()


class SlowMedia:
    """A media port whose answers wait until the test releases the peer (``hold``/``release``)."""

    def __init__(self) -> None:
        self._held: dict[str, trio.Event] = {}
        self.opening: list[tuple[str, str]] = []  # (peer, sdp) as offers reach the port
        self.answered: list[tuple[str, str]] = []
        self.closed: list[str] = []
        self.gates: dict[str, bool] = {}
        self.views: list[tuple[str, dict[str, int], list[str]]] = []

    def hold(self, peer_id: str) -> None:
        self._held[peer_id] = trio.Event()

    def release(self, peer_id: str) -> None:
        self._held.pop(peer_id).set()

    async def open_peer(self, call_id: str, peer_id: str, offer_sdp: str) -> str:
        self.opening.append((peer_id, offer_sdp))
        held = self._held.get(peer_id)
        if held is not None:
            await held.wait()
        self.answered.append((peer_id, offer_sdp))
        return f"answer to {offer_sdp} in {call_id}"

    def close_peer(self, call_id: str, peer_id: str) -> None:
        self.closed.append(peer_id)

    def close_call(self, call_id: str) -> None:
        self.closed.append(f"call {call_id}")

    def set_receiving(self, call_id: str, peer_id: str, on: bool) -> None:
        self.gates[peer_id] = on

    def set_publishing(self, call_id: str, peer_id: str, on: bool) -> None:
        self.gates[peer_id] = on

    def slots(self, call_id: str, peer_id: str) -> dict[int, str]:
        return {0: "conn-other"}

    def audio_slots(self, call_id: str, peer_id: str) -> dict[int, str]:
        return {0: "conn-other"}

    def set_view(
        self, call_id: str, peer_id: str, shown: dict[str, int], pinned: list[str]
    ) -> None:
        self.views.append((peer_id, dict(shown), list(pinned)))
