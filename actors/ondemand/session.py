"""An on-demand request's session: the call core on :class:`OnDemandPolicy` (issue 14).

The patient is in their own call (``room/<room id>``) from Meet Now on: it is their virtual waiting
room while the intake runs and nobody has claimed them, and it becomes the session when someone
does. Who may enter: the patient's token, and once claimed the one staff member who claimed it.
Nobody else: no invitations, no hold. Both must press Start Session (``session.start``) before
either sees or hears the other: until then the call stays ``waiting``, and the core's gate (media
flows only ``in_call``) forwards nothing to or from either of them. The request's state lives in
the queue (``ondemand/<org>``) and in storage; the session asks the queue for intake steps and
tells it when the session starts and ends.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Final

from actors import addresses, refusals
from actors.calls.core import Call, wire
from actors.calls.media import MediaPort
from actors.calls.presence import ParticipantKind, Present
from actors.calls.routing import call_id_for
from actors.calls.state import CallState
from actors.inbound import Inbound, RedeemToken
from actors.ondemand.messages import (
    FINAL_STATES,
    QueueStatus,
    RequestState,
    SessionClaimed,
    SessionDeclined,
    SessionEnded,
    SessionStarted,
    StepSubmitted,
)
from actors.principal import Principal
from runtime.address import Address
from runtime.errors import ActorError, Refusal
from runtime.kernel import handles
from storage import ondemand as store_od
from storage.db import Store
from storage.errors import NotFoundError, TokenRejectedError

log = logging.getLogger(__name__)

#: The patient and the one staff member who claimed it.
MAX_PARTICIPANTS = 2
#: A patient who closed the page and is back within this many seconds keeps their place.
RECONNECT_GRACE = 120.0
#: How long the session waits for the queue (an intake step, the start).
QUEUE_TIMEOUT = 5.0

#: Why a session ends.
ENDED: Final = "ended"
LEFT: Final = "left"
CANCELLED: Final = "cancelled"
DECLINED: Final = "declined"

#: The two who must press Start Session.
STAFF_SIDE: Final = "staff"
PATIENT_SIDE: Final = "patient"


@dataclass(frozen=True)
class SessionSnapshot:
    """What a new session starts from (the queue just wrote it): no storage read at first start."""

    request: store_od.Request


class OnDemandPolicy:
    """What an on-demand session sets on the call core (see the module docstring)."""

    limit = MAX_PARTICIPANTS

    def __init__(
        self,
        store: Store,
        room_id: str,
        grace: float = RECONNECT_GRACE,
        snapshot: store_od.Request | None = None,
    ) -> None:
        self.store = store
        self.room_id = room_id
        self.reconnect_grace = grace
        self._snapshot = snapshot
        self.request_id = ""
        self.org_id = 0
        self.patient_name = ""
        self.state = RequestState.INTAKE
        self.step = 0
        self.steps_total = 0
        self.estimate: float | None = None
        self.claimed_by: str | None = None
        self.claimed_name: str | None = None
        self.reason: str | None = None
        #: Who has pressed Start Session (``STAFF_SIDE``, ``PATIENT_SIDE``).
        self.started: set[str] = set()

    @property
    def queue(self) -> Address:
        return addresses.ondemand(self.org_id)

    def load(self, request: store_od.Request) -> None:
        self.request_id = request.id
        self.org_id = request.org_id
        self.patient_name = request.details.get("name", "")
        self.state = RequestState(request.state)
        self.step = request.steps_done
        self.steps_total = request.steps_total
        self.claimed_by = str(request.claimed_by) if request.claimed_by is not None else None
        self.claimed_name = request.claimed_name
        if self.state is RequestState.IN_SESSION:
            self.started = {STAFF_SIDE, PATIENT_SIDE}

    # -- what the core asks -----------------------------------------------------------------------
    @property
    def grace(self) -> float | None:
        return self.reconnect_grace

    async def restore(self) -> CallState:
        request = self._snapshot or await store_od.by_room(self.store, self.room_id)
        self._snapshot = None
        if request.state in FINAL_STATES:
            raise Refusal(refusals.CLOSED, "this session has ended")
        self.load(request)
        return CallState.IN_CALL if self.state is RequestState.IN_SESSION else CallState.WAITING

    def admit(self, principal: Principal, state: CallState) -> ParticipantKind:
        if principal.kind == ParticipantKind.STAFF:
            if self.claimed_by is None:
                raise Refusal(refusals.NOT_JOINED, "claim this request from the list first")
            if principal.user_id != self.claimed_by:
                raise Refusal(refusals.FORBIDDEN, f"{self.claimed_name} has this request")
            return ParticipantKind.STAFF
        if principal.kind != ParticipantKind.CALLER or principal.room_id != self.room_id:
            raise Refusal(refusals.FORBIDDEN, "this is not your session")
        return ParticipantKind.CALLER

    def holds_for(self, person: Present) -> bool:
        return person.kind is ParticipantKind.CALLER

    def describe(self) -> dict[str, Any]:
        return {
            "ondemand": {
                "request": self.request_id,
                "state": self.state.value,
                "step": self.step,
                "steps_total": self.steps_total,
                "estimate": self.estimate,
                "claimed_by": self.claimed_name,
                "started": {
                    STAFF_SIDE: STAFF_SIDE in self.started,
                    PATIENT_SIDE: PATIENT_SIDE in self.started,
                },
                "reason": self.reason,
            }
        }

    async def entered(self, call: Call, person: Present) -> None:
        return None

    async def left(self, call: Call, person: Present) -> None:
        return None

    async def hold_requested(self, call: Call, request: Inbound) -> None:
        raise Refusal(refusals.NO_HOLD, "an on-demand session has no hold")

    async def holding(self, call: Call) -> None:
        return None

    async def held(self, call: Call) -> None:
        return None

    async def end_requested(self, call: Call, request: Inbound) -> str:
        return ENDED

    async def abandoned(self, call: Call) -> str:
        return LEFT

    async def closing(self, call: Call, reason: str) -> None:
        """The request is over in storage before anyone is told, so the token stops working."""
        if self.state in FINAL_STATES:
            return
        taken = self.state in (RequestState.CLAIMED, RequestState.IN_SESSION)
        final = RequestState.ENDED if taken else RequestState.CANCELLED
        outcome = await store_od.finish(self.store, self.request_id, final.value, reason)
        self.state = RequestState(outcome.request.state)

    def closed(self, call: Call, reason: str) -> None:
        with contextlib.suppress(ActorError):
            call.ref(self.queue).tell(SessionEnded(self.request_id, reason, self.claimed_by))


class OnDemandSession(Call):
    """``room/<room id>``: one on-demand request's call on :class:`OnDemandPolicy`."""

    def __init__(
        self,
        store: Store,
        room_id: str,
        media: MediaPort | None,
        grace: float = RECONNECT_GRACE,
        snapshot: store_od.Request | None = None,
    ) -> None:
        self.od = OnDemandPolicy(store, room_id, grace, snapshot)
        super().__init__(call_id_for(addresses.room(room_id)), room_id, self.od, media)
        self.store = store

    # -- the patient's token ----------------------------------------------------------------------
    @handles(RedeemToken)
    async def _redeem(self, msg: RedeemToken) -> Principal:
        try:
            request = await store_od.check_token(self.store, self.room_id, msg.secret)
        except (TokenRejectedError, NotFoundError):
            raise Refusal(
                refusals.INVALID_TOKEN, "this link is not valid or the session has ended"
            ) from None
        return Principal(
            kind=ParticipantKind.CALLER.value,
            display_name=request.details.get("name", "") or "Patient",
            room_id=self.room_id,
            participant_id=request.id,
        )

    def _patient(self, msg: Inbound) -> Present:
        person = self.member(msg.conn)
        if person.kind is not ParticipantKind.CALLER:
            raise Refusal(refusals.FORBIDDEN, "only the patient sends this")
        return person

    # -- the patient's side -----------------------------------------------------------------------
    @wire("ondemand.step")
    async def _step(self, msg: Inbound) -> dict[str, Any]:
        self._patient(msg)
        if self.state is CallState.ENDED or self.od.state in FINAL_STATES:
            raise Refusal(refusals.ENDED, "this request is over")
        if self.od.state is RequestState.IN_SESSION:
            raise Refusal(refusals.ENDED, "the session has started: the intake is closed")
        reply: dict[str, Any] = await self.ref(self.od.queue).ask(
            StepSubmitted(self.od.request_id, int(msg.body["step"]), dict(msg.body["values"])),
            timeout=QUEUE_TIMEOUT,
        )
        self.od.step = int(reply["step"])
        self.od.steps_total = int(reply["steps_total"])
        self.od.state = RequestState(reply["state"])
        self.push_state()
        return reply

    @wire("ondemand.cancel")
    async def _cancel(self, msg: Inbound) -> dict[str, Any]:
        self._patient(msg)
        await self.end(CANCELLED)  # the policy writes it; the queue hears SessionEnded
        return {}

    # -- both sides -------------------------------------------------------------------------------
    @wire("session.start")
    async def _start(self, msg: Inbound) -> dict[str, Any]:
        person = self.member(msg.conn)
        if self.od.claimed_by is None:
            raise Refusal(refusals.NOT_JOINED, "nobody has taken this request yet")
        if self.state is CallState.ENDED:
            raise Refusal(refusals.ENDED, "this session has ended")
        side = STAFF_SIDE if person.kind is ParticipantKind.STAFF else PATIENT_SIDE
        self.od.started.add(side)
        if (
            self.od.started >= {STAFF_SIDE, PATIENT_SIDE}
            and self.od.state is not RequestState.IN_SESSION
        ):
            await self.ref(self.od.queue).ask(
                SessionStarted(self.od.request_id), timeout=QUEUE_TIMEOUT
            )
            self.od.state = RequestState.IN_SESSION
            self.set_state(CallState.IN_CALL)
        self.push_state()
        return {"started": self.od.describe()["ondemand"]["started"]}

    # -- what the queue tells the session ---------------------------------------------------------
    @handles(SessionClaimed)
    async def _claimed(self, msg: SessionClaimed) -> None:
        if self.state is CallState.ENDED:
            raise Refusal(refusals.ENDED, "this session has ended")
        self.od.claimed_by = msg.user_id
        self.od.claimed_name = msg.name
        self.od.state = RequestState.CLAIMED
        self.push_state()

    @handles(SessionDeclined)
    async def _declined(self, msg: SessionDeclined) -> None:
        self.od.state = RequestState.DECLINED
        self.od.reason = msg.reason or None
        self.push_state()
        await self.end(DECLINED)

    @handles(QueueStatus)
    async def _status(self, msg: QueueStatus) -> None:
        if self.state is CallState.ENDED:
            return
        changed = (self.od.state, self.od.estimate, self.od.step) != (
            msg.state,
            msg.estimate,
            msg.step,
        )
        self.od.state, self.od.estimate, self.od.step = msg.state, msg.estimate, msg.step
        if changed:
            self.push_state()
