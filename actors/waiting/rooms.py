"""Rooms: a caller's private, single-use video room (``room/<id>``) and the host that starts them.

A room is created at arrival and lives until its call ends or its caller leaves for good; then its
tokens and invite links are revoked in storage and the actor stops, so a late click gets a clear
"this call has ended". The room decides who may enter (its caller's token, a provider of its area,
a guest who claimed an invite), relays chat, and drives the media plane for its participants.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import trio

from actors.inbound import CloseConnection, ConnectionClosed, Inbound, Push, RedeemToken
from actors.messages import (
    AreaChanged,
    CallerGone,
    CallerUpdate,
    ClaimInvite,
    EndRoom,
    GuestPass,
    HoldCaller,
    OpenRoom,
    OpenRooms,
    ProviderJoining,
    RoomSnapshot,
)
from actors.principal import AreaPlace, Principal, Role
from media import MediaError, PeerClosed, PeerConnected, SlotsChanged
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor
from runtime.supervisor import ChildSpec, Restart, Supervisor
from storage import areas as area_store
from storage import audit, callers, calls, orgs
from storage import rooms as room_store
from storage.db import Store
from storage.errors import NotFoundError, TokenRejectedError

log = logging.getLogger(__name__)

#: Everyone in a call, the caller included (seed: "up to 6 depending on bandwidth").
MAX_PARTICIPANTS = 6
#: A caller who closed the tab and comes back within this many seconds keeps their place.
RECONNECT_GRACE = 120.0
#: How often (seconds, at most) a quiet room checks whether its caller's grace period ran out.
GRACE_CHECK_INTERVAL = 30.0
#: A grace period shorter than a few check intervals is checked this many times per period.
GRACE_CHECKS = 4
#: An invite link stays usable this long (seconds) unless the call ends first.
INVITE_LIFETIME = 24 * 3600
#: Websocket close code sent to everyone when the room ends (4000-4999 are the application's).
CLOSE_ROOM_ENDED = 4001

_CALLER_TOKEN_KIND = "caller"


class MediaPort(Protocol):
    """What a room needs of the media plane (``media.worker.Worker`` satisfies it)."""

    async def open_peer(self, call_id: str, peer_id: str, offer_sdp: str) -> str: ...

    def close_peer(self, call_id: str, peer_id: str) -> None: ...

    def close_call(self, call_id: str) -> None: ...

    def set_receiving(self, call_id: str, peer_id: str, on: bool) -> None: ...

    def set_publishing(self, call_id: str, peer_id: str, on: bool) -> None: ...

    def slots(self, call_id: str, peer_id: str) -> dict[int, str]: ...


@dataclass
class Present:
    """One connected participant (a person may be present from several tabs: one each)."""

    conn: str
    principal: Principal
    kind: str  # staff | caller | guest
    audio: bool = True
    video: bool = True
    participant_row: int | None = None

    @property
    def peer_id(self) -> str:
        return self.conn.replace("/", "-")

    def view(self) -> dict[str, Any]:
        return {
            "id": self.peer_id,
            "name": self.principal.display_name,
            "kind": self.kind,
            "audio": self.audio,
            "video": self.video,
        }


class Room(Actor):
    """``room/<id>``: one caller's private room. See the module docstring."""

    idle_timeout = GRACE_CHECK_INTERVAL

    def __init__(
        self,
        store: Store,
        room_id: str,
        media: MediaPort | None,
        grace: float = RECONNECT_GRACE,
        snapshot: callers.RoomRestore | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.room_id = room_id
        self.media = media
        self.grace = grace
        #: A new room's state as its arrival just wrote it: the first start needs no storage read.
        self._snapshot = snapshot
        # Per room: a shorter grace (tests, a deployment's choice) is checked proportionally often.
        self.idle_timeout = min(GRACE_CHECK_INTERVAL, grace / GRACE_CHECKS)  # type: ignore[misc]
        self.present: dict[str, Present] = {}
        self.state = "waiting"
        self.joining: str | None = None
        self.call_id: str | None = None
        self.caller_left_at: float | None = None

    async def on_start(self) -> None:
        # One storage round trip: every arrival starts a room, and under load each trip through
        # the worker thread costs milliseconds of the room host's serial time (bench/README.md).
        snap = self._snapshot or await callers.load_room_restore(
            self.store, self.room_id, caller_token_kind=_CALLER_TOKEN_KIND
        )
        self._snapshot = None
        room, caller, area, unit = snap.room, snap.caller, snap.area, snap.unit
        if room.state != "open" or area is None or unit is None:
            raise Refusal("closed", "this room has ended")
        self.caller_id = caller.id if caller is not None else None
        self.caller_name = caller.details.get("name", "") if caller is not None else ""
        status = caller.status if caller is not None else "waiting"
        self.area_id = area.id
        self.area_name = area.name
        self.place = AreaPlace(str(area.id), str(unit.id), str(unit.org_id))
        self.state = (
            "in_call" if status == "in_call" else "on_hold" if status == "on_hold" else "waiting"
        )
        self.call_id = snap.active_call_id
        self.caller_left_at = trio.current_time()

    async def _load_area(self, area_id: int) -> None:
        area = await area_store.get_area(self.store, area_id)
        unit = await orgs.get_unit(self.store, area.unit_id)
        self.area_id = area_id
        self.area_name = area.name
        self.place = AreaPlace(str(area_id), str(unit.id), str(unit.org_id))

    @property
    def area_ref_address(self) -> str:
        return f"area/{self.area_id}"

    # -- dispatch ---------------------------------------------------------------------------------
    async def handle(self, message: object) -> object:
        if type(message) is Inbound:
            handler = self._inbound.get(message.type)
            if handler is None:
                raise Refusal("unknown_type", f"a room does not handle {message.type}")
            result: object = await handler(self, message)
            return result
        if isinstance(message, RedeemToken):
            return await self._redeem(message)
        if isinstance(message, ClaimInvite):
            return await self._claim_invite(message)
        if isinstance(message, ConnectionClosed):
            await self._gone(message.conn)
            return None
        if isinstance(message, (SlotsChanged, PeerClosed, PeerConnected)):
            self._media_event(message)
            return None
        if isinstance(message, ProviderJoining):
            self.joining = message.name
            self.state = "in_call"
            self._push_state()
            return None
        if isinstance(message, HoldCaller):
            await self._hold()
            return None
        if isinstance(message, EndRoom):
            await self._end(message.reason)
            return None
        if isinstance(message, AreaChanged):
            self.area_id = message.area_id
            self.area_name = message.area_name
            self.place = message.place
            self.state = "waiting"
            self._push_state()
            return None
        if isinstance(message, RoomSnapshot):
            return RoomSnapshot(
                self.room_id, self.state, self.area_id, [p.peer_id for p in self.present.values()]
            )
        return await super().handle(message)

    async def on_idle(self) -> bool:
        """A caller who has not been connected for the grace period has left for good."""
        if self.caller_id is None or any(p.kind == "caller" for p in self.present.values()):
            return False
        if (
            self.caller_left_at is not None
            and trio.current_time() - self.caller_left_at >= self.grace
        ):
            with contextlib.suppress(ActorError):
                await callers.set_status(self.store, self.caller_id, "left")
            await self._end("left")
            return True
        return False

    # -- entry ------------------------------------------------------------------------------------
    async def _redeem(self, msg: RedeemToken) -> Principal:
        raw = msg.secret
        try:
            token = await room_store.check_token(self.store, raw)
        except (TokenRejectedError, NotFoundError):
            raise Refusal("invalid_token", "this link is not valid or the call has ended") from None
        if token.room_id != self.room_id or token.kind == "invite":
            raise Refusal("invalid_token", "this link is not valid or the call has ended")
        if token.kind == _CALLER_TOKEN_KIND:
            return Principal(
                kind="caller",
                display_name=self.caller_name or "Caller",
                room_id=self.room_id,
                participant_id=token.caller_id,
            )
        return Principal(
            kind="guest",
            display_name=token.label or "Guest",
            room_id=self.room_id,
            participant_id=token.id,
        )

    async def _claim_invite(self, msg: ClaimInvite) -> GuestPass:
        if self.state == "ended":
            raise Refusal("ended", "this call has ended")
        try:
            token = await room_store.redeem_token(self.store, msg.secret)
        except (TokenRejectedError, NotFoundError):
            raise Refusal(
                "invalid_token", "this invitation has been used, has expired or the call has ended"
            ) from None
        if token.room_id != self.room_id or token.kind != "invite":
            raise Refusal("invalid_token", "this invitation is not valid")
        name = msg.display_name.strip()[:80] or token.label or "Guest"
        guest = await room_store.issue_token(
            self.store, self.room_id, "guest", single_use=False, label=name
        )
        await audit.append(
            self.store,
            audit.INVITE_CLAIMED,
            actor_kind="caller",
            area_id=self.area_id,
            subject=self.room_id,
            remote_addr=msg.remote_addr,
        )
        return GuestPass(f"{self.room_id}.{guest.raw}", self.room_id, self.area_name)

    def _may_enter(self, principal: Principal) -> str:
        if principal.kind == "staff":
            if not principal.has_role(Role.PROVIDER, self.place):
                raise Refusal("forbidden", f"you are not a provider in {self.area_name}")
            if self.state not in ("in_call",):
                raise Refusal("not_joined", "join this caller from the waiting area list first")
            return "staff"
        if principal.room_id != self.room_id:
            raise Refusal("forbidden", "this is not your room")
        return principal.kind

    async def _enter(self, msg: Inbound) -> dict[str, Any]:
        kind = self._may_enter(msg.principal)
        others = {p.principal.participant_id or p.conn for p in self.present.values()}
        if kind != "caller" and len(others) >= MAX_PARTICIPANTS and msg.conn not in self.present:
            raise Refusal("call_full", f"a call holds at most {MAX_PARTICIPANTS} people")
        person = Present(msg.conn, msg.principal, kind)
        self.present[msg.conn] = person
        if kind == "caller":
            self.caller_left_at = None
            if self.caller_id is not None:
                with contextlib.suppress(ActorError):
                    self.ref(self.area_ref_address).tell(
                        CallerUpdate(self.caller_id, connected=True)
                    )
        elif kind == "staff" and self.call_id is None:
            call = await calls.start_call(self.store, self.room_id, caller_id=self.caller_id)
            self.call_id = call.id
        if self.call_id is not None:
            for someone in self.present.values():
                await self._record_participant(someone)
        self._push_participants()
        if kind == "staff":
            self._push_state()
        return self._state_view(person)

    async def _record_participant(self, person: Present) -> None:
        if self.call_id is None or person.participant_row is not None:
            return
        kind = {"staff": "staff", "caller": "caller", "guest": "invitee"}[person.kind]
        row = await calls.add_participant(
            self.store,
            self.call_id,
            kind,  # type: ignore[arg-type]
            person.principal.display_name,
            user_id=int(person.principal.user_id) if person.principal.user_id else None,
        )
        person.participant_row = row.id

    def _state_view(self, person: Present | None = None) -> dict[str, Any]:
        view: dict[str, Any] = {
            "room": self.room_id,
            "state": self.state,
            "area": self.area_name,
            "joining": self.joining,
            "participants": [p.view() for p in self.present.values()],
        }
        if person is not None:
            view["you"] = person.peer_id
        return view

    async def _leave(self, msg: Inbound) -> dict[str, Any]:
        await self._gone(msg.conn)
        return {}

    async def _gone(self, conn: str) -> None:
        person = self.present.pop(conn, None)
        if person is None:
            return
        if self.media is not None:
            self.media.close_peer(self.room_id, person.peer_id)
        if person.participant_row is not None:
            with contextlib.suppress(Exception):
                await calls.participant_left(self.store, person.participant_row)
        if person.kind == "caller" and not any(p.kind == "caller" for p in self.present.values()):
            self.caller_left_at = trio.current_time()
            if self.caller_id is not None:
                with contextlib.suppress(ActorError):
                    self.ref(self.area_ref_address).tell(
                        CallerUpdate(self.caller_id, connected=False)
                    )
        self._push_participants()

    # -- in the call ------------------------------------------------------------------------------
    async def _chat(self, msg: Inbound) -> dict[str, Any]:
        person = self._member(msg.conn)
        text = str(msg.body["text"]).strip()
        if not text:
            raise Refusal("bad_field", "an empty message is not sent")
        self._broadcast(
            Push(
                "chat.message",
                {
                    "from": person.principal.display_name,
                    "peer": person.peer_id,
                    "text": text,
                    "at": datetime.now(UTC).timestamp(),
                },
            )
        )
        return {}

    async def _media_offer(self, msg: Inbound) -> dict[str, Any]:
        person = self._member(msg.conn)
        if self.media is None:
            raise Refusal("no_media", "this server runs without a media plane")
        try:
            answer = await self.media.open_peer(self.room_id, person.peer_id, msg.body["sdp"])
        except (MediaError, ValueError) as error:
            raise Refusal("bad_sdp", str(error)) from None
        if self.state != "in_call":
            self._gate_media(person)
        return {"sdp": answer, "slots": self._slot_names(person.peer_id)}

    async def _media_leave(self, msg: Inbound) -> dict[str, Any]:
        person = self._member(msg.conn)
        if self.media is not None:
            self.media.close_peer(self.room_id, person.peer_id)
        return {}

    def _slot_names(self, peer_id: str) -> dict[str, str]:
        """Slot index -> the peer id filling it (``room.participants`` names each peer id)."""
        if self.media is None:
            return {}
        return {str(slot): peer for slot, peer in self.media.slots(self.room_id, peer_id).items()}

    def _media_event(self, event: SlotsChanged | PeerClosed | PeerConnected) -> None:
        person = next((p for p in self.present.values() if p.peer_id == event.peer_id), None)
        if person is None:
            return
        if isinstance(event, SlotsChanged):
            body: dict[str, Any] = {"slots": self._slot_names(event.peer_id)}
            kind = "media.slots"
        elif isinstance(event, PeerClosed):
            body, kind = {"reason": event.reason}, "media.closed"
        else:
            body, kind = {}, "media.connected"
        with contextlib.suppress(ActorError):
            self.ref(person.conn).tell(Push(kind, body))

    async def _media_state(self, msg: Inbound) -> dict[str, Any]:
        person = self._member(msg.conn)
        person.audio = bool(msg.body["audio"])
        person.video = bool(msg.body["video"])
        self._push_participants()
        return {}

    async def _invite(self, msg: Inbound) -> dict[str, Any]:
        person = self._member(msg.conn)
        if person.kind != "staff":
            raise Refusal("forbidden", "only staff in the call can invite")
        tokens = await room_store.list_tokens(self.store, self.room_id)
        now = datetime.now(UTC)
        pending = [
            t
            for t in tokens
            if t.kind == "invite"
            and t.used_at is None
            and t.revoked_at is None
            and (t.expires_at is None or t.expires_at > now)
        ]
        people = {p.principal.participant_id or p.conn for p in self.present.values()}
        if len(people) + len(pending) >= MAX_PARTICIPANTS:
            raise Refusal(
                "call_full", f"a call holds at most {MAX_PARTICIPANTS} people, invitations included"
            )
        label = str(msg.body.get("label") or "").strip()[:80]
        token = await room_store.issue_token(
            self.store,
            self.room_id,
            "invite",
            single_use=True,
            expires_at=now + timedelta(seconds=INVITE_LIFETIME),
            label=label,
        )
        await audit.append(
            self.store,
            audit.INVITE,
            actor_user_id=int(msg.principal.user_id) if msg.principal.user_id else None,
            area_id=self.area_id,
            subject=self.room_id,
            remote_addr=msg.remote_addr,
        )
        return {"url": f"/i/{self.room_id}.{token.raw}"}

    async def _call_hold(self, msg: Inbound) -> dict[str, Any]:
        self._member(msg.conn)
        if self.caller_id is None:
            raise Refusal("no_caller", "this room has no caller to put on hold")
        await self.ref(self.area_ref_address).ask(
            Inbound(
                "caller.hold",
                {"caller_id": self.caller_id},
                msg.principal,
                msg.conn,
                msg.remote_addr,
            )
        )
        return {}

    async def _call_end(self, msg: Inbound) -> dict[str, Any]:
        self._member(msg.conn)
        if self.caller_id is not None:
            with contextlib.suppress(ActorError):
                await callers.set_status(self.store, self.caller_id, "ended")
        await audit.append(
            self.store,
            audit.END,
            actor_user_id=int(msg.principal.user_id) if msg.principal.user_id else None,
            area_id=self.area_id,
            subject=self.caller_id or self.room_id,
            remote_addr=msg.remote_addr,
        )
        await self._end("ended")
        return {}

    def _member(self, conn: str) -> Present:
        person = self.present.get(conn)
        if person is None:
            raise Refusal("not_in_room", "enter the room first")
        return person

    _inbound = {
        "room.enter": _enter,
        "room.leave": _leave,
        "chat.send": _chat,
        "media.offer": _media_offer,
        "media.state": _media_state,
        "media.leave": _media_leave,
        "call.invite": _invite,
        "call.hold": _call_hold,
        "call.end": _call_end,
    }

    # -- state changes ----------------------------------------------------------------------------
    async def _hold(self) -> None:
        self.state = "on_hold"
        self.joining = None
        for person in list(self.present.values()):
            if person.kind == "caller":
                self._gate_media(person)
                continue
            # Staff and guests leave the call; the caller waits again.
            with contextlib.suppress(ActorError):
                self.ref(person.conn).tell(
                    Push("room.state", {"state": "on_hold", "room": self.room_id})
                )
            await self._gone(person.conn)
        if self.call_id is not None:
            await calls.end_call(self.store, self.call_id)
            self.call_id = None
        self._push_state()

    async def _end(self, reason: str) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        await room_store.close_room(self.store, self.room_id)
        if self.call_id is not None:
            await calls.end_call(self.store, self.call_id)
        if self.media is not None:
            self.media.close_call(self.room_id)
        self._broadcast(
            Push("room.state", {"state": "ended", "reason": reason, "room": self.room_id})
        )
        for person in list(self.present.values()):
            with contextlib.suppress(ActorError):
                self.ref(person.conn).tell(CloseConnection(CLOSE_ROOM_ENDED, "the call has ended"))
        self.present.clear()
        if self.caller_id is not None:
            with contextlib.suppress(ActorError):
                self.ref(self.area_ref_address).tell(CallerGone(self.caller_id, reason))
        self.stop()

    def _push_state(self) -> None:
        self._broadcast(Push("room.state", self._state_view()))
        for person in self.present.values():
            self._gate_media(person)

    def _gate_media(self, person: Present) -> None:
        """Media flows only while the call is on: on hold (or waiting) the server forwards
        nothing to or from anyone still connected, whatever their page does; the caller's
        camera reaches no one and the caller hears no one, from the next packet on."""
        if self.media is not None:
            on = self.state == "in_call"
            self.media.set_receiving(self.room_id, person.peer_id, on)
            self.media.set_publishing(self.room_id, person.peer_id, on)

    def _push_participants(self) -> None:
        self._broadcast(
            Push("room.participants", {"participants": [p.view() for p in self.present.values()]})
        )

    def _broadcast(self, event: Push) -> None:
        for person in list(self.present.values()):
            try:
                self.ref(person.conn).tell(event)
            except ActorError:
                self.present.pop(person.conn, None)


class RoomHost(Actor):
    """``rooms``: starts room actors on demand (they restore themselves from storage)."""

    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        media: MediaPort | None,
        grace: float = RECONNECT_GRACE,
    ) -> None:
        super().__init__()
        self.store = store
        self.supervisor = supervisor
        self.media = media
        self.grace = grace

    async def handle(self, message: object) -> object:
        if isinstance(message, OpenRoom):
            return await self._open(message.room_id, None)
        if isinstance(message, OpenRooms):
            # Started side by side: one room host serves every area, so starting a batch's rooms
            # one after another would make it the node's arrival bottleneck.
            async with trio.open_nursery() as nursery:
                for snapshot in message.snapshots:
                    nursery.start_soon(self._open, snapshot.room.id, snapshot)
            return None
        return await super().handle(message)

    async def _open(self, room_id: str, snapshot: callers.RoomRestore | None) -> str:
        address = f"room/{room_id}"
        if address not in self.registry:
            first = [snapshot] if snapshot is not None else []  # a restart reads storage

            def new_room() -> Room:
                return Room(
                    self.store, room_id, self.media, self.grace, first.pop() if first else None
                )

            await self.supervisor.start_child(ChildSpec(address, new_room, Restart.TRANSIENT))
        return address


def new_secret() -> str:
    return secrets.token_urlsafe(24)
