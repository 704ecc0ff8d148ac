"""Waiting areas: one actor per area (``area/<id>``) and the host that places them (``areas``).

A waiting area owns its queue: who waits, since when, with whom they are, who watches the list.
Arrivals are written to storage before they are acknowledged, and a restarted area actor rebuilds
its queue from storage, so a crash or a server restart loses no waiting caller. Providers watching
the area get one event per change (``queue.caller`` upserts, ``queue.removed``); callers never get
anything from here: each one only ever hears from their own room.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from actors import addresses, refusals
from actors.inbound import ConnectionClosed, Inbound, Push
from actors.messages import (
    AdoptArea,
    AreaChanged,
    AreaLeaflet,
    AreaPublic,
    AreasFor,
    AreaSummary,
    ArrivalTicket,
    Arrive,
    CallerGone,
    CallerUpdate,
    DescribeArea,
    DescribeForLeaflet,
    EndRoom,
    FindArea,
    GiveUpArea,
    HoldCaller,
    HoldFromCall,
    OpenRoom,
    OpenRooms,
    ProviderJoining,
    ReloadArea,
    ShowQueue,
    TransferIn,
)
from actors.ondemand.estimate import RecentWaits, WaitEstimate, in_whole_minutes
from actors.principal import AreaPlace, Principal, Role
from actors.staff.directory import principal_of
from actors.waiting.hours import is_open, next_opening
from runtime.errors import ActorError, AskTimeout, Refusal
from runtime.kernel import Actor, handles
from runtime.supervisor import ChildSpec, Restart, Supervisor
from services.throttle import NEVER_COUNTED, FailureThrottle
from storage import areas as area_store
from storage import audit, callers, orgs
from storage.areas import Closure
from storage.areas import WaitingArea as AreaConfig
from storage.db import Store

log = logging.getLogger(__name__)

#: Old names, kept importable for pages and tests: the addresses live in ``actors.addresses``.
AREAS_ADDRESS = addresses.AREAS
ROOMS_ADDRESS = addresses.ROOMS

#: Longest value accepted in one arrival-form field; a name or a reason for visit, not a letter.
MAX_FIELD_LENGTH = 500
#: How long a ticket's room waits for its caller's first connection (seconds) is the room's business;
#: the area only needs to bound how many callers one area holds, so a flood cannot exhaust memory.
MAX_QUEUE = 2000
#: Most arrivals admitted together (one transaction): bounds the first one's wait for the rest.
MAX_ARRIVAL_BATCH = 32
#: Arrivals one address may make in one area within ``ARRIVAL_WINDOW`` seconds: a family or a
#: clinic's kiosk makes a few; a script filling the queue with fake callers makes hundreds
#: (issue 15). Loopback is never counted (services.throttle): behind a proxy, configure
#: ``--trusted-proxy`` so the real address is counted.
ARRIVALS_PER_ADDRESS = 10
ARRIVAL_WINDOW = 10 * 60.0
#: Arrivals one area admits from all addresses together within ``ARRIVAL_WINDOW``, so a flood
#: from many addresses cannot keep it at ``MAX_QUEUE``: about two a second, sustained for ten
#: minutes, which no clinic's real callers reach.
ARRIVALS_PER_AREA = 1200
#: The key the area-wide count is kept under in its window counter.
_WHOLE_AREA = "area"


#: The refusal for staff without the role in an area, and (through the gateway) for an area id
#: that does not exist: ids are sequential, and telling the two apart would list the areas.
NOT_YOURS = "you are not a {role} in this waiting area"


def area_address(area_id: int) -> str:
    """Kept for other modules that import it; the constructor is ``addresses.area``."""
    return addresses.area(area_id)


@dataclass(slots=True)  # one per waiting caller (10,000 on a node, issue 17): no dict each
class QueuedCaller:
    id: str
    room_id: str
    details: dict[str, str] = field(repr=False)
    status: str
    arrived_at: float
    queued_at: float
    transferred_from: str | None = None
    connected: bool = False
    with_names: tuple[str, ...] = ()
    #: The caller's last pre-call check (issue 16), None until they ran one.
    precheck: dict[str, Any] | None = None
    #: 1, or 2, 3... for a later caller with the name of one still queued here: two patients
    #: called "John Smith" are both admitted, and the dashboard tells them apart (issue 15).
    namesake: int = 1

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room_id,
            "name": self.details.get("name", ""),
            "details": self.details,
            "status": self.status,
            "arrived_at": self.arrived_at,
            "queued_at": self.queued_at,
            "transferred_from": self.transferred_from,
            "connected": self.connected,
            "with": list(self.with_names),
            "precheck": self.precheck,
            "namesake": self.namesake,
        }


def name_key(details: dict[str, str]) -> str:
    """A caller's name as compared for namesakes: case and spacing do not matter."""
    return " ".join(details.get("name", "").split()).casefold()


def _epoch(value: datetime) -> float:
    return value.replace(tzinfo=value.tzinfo or UTC).timestamp()


class WaitingArea(Actor):
    """``area/<id>``: the queue of one waiting area and the providers watching it."""

    def __init__(self, store: Store, area_id: int, watchers: set[str] | None = None) -> None:
        super().__init__()
        self.store = store
        self.area_id = area_id
        self.queue: dict[str, QueuedCaller] = {}
        #: Queued callers' namesake numbers by name key (`name_key`), kept with ``queue`` by
        #: `_enqueue` and `_remove`: an arrival's number is a look-up, not a walk of the queue
        #: (the walk was 9 % of the server's samples with 1,400 callers waiting; issue 17).
        self.names: dict[str, dict[str, int]] = {}
        #: The connections watching this area. The host hands every instance of the area the same
        #: set, like the mailbox that outlives a crash: a restarted area still knows its watchers
        #: and sends them the queue again, so open dashboards do not silently stop (issue 15).
        self.watchers: set[str] = watchers if watchers is not None else set()
        #: Queued-to-joined waits of the area's recent joins: each waiting caller's estimate.
        self.recent_waits = RecentWaits()
        #: What the waiting callers were last told (`_tell_estimates`), in whole minutes.
        self.told_estimate: float | None = None
        #: Flood limits (in memory, like the sign-in throttle: a restart forgets them).
        self.arrivals_by_address = FailureThrottle(ARRIVALS_PER_ADDRESS, ARRIVAL_WINDOW)
        self.arrivals_in_area = FailureThrottle(ARRIVALS_PER_AREA, ARRIVAL_WINDOW, max_tracked=1)

    async def _load_settings(self) -> None:
        """Read name, hours, closures, form and active flag; the queue and watchers are untouched."""
        self.config: AreaConfig = await area_store.get_area(self.store, self.area_id)
        self.closures: list[Closure] = await area_store.list_closures(self.store, self.area_id)

    async def on_start(self) -> None:
        await self._load_settings()
        unit = await orgs.get_unit(self.store, self.config.unit_id)
        self.place = AreaPlace(str(self.area_id), str(unit.id), str(unit.org_id))
        for row in await callers.list_queue(self.store, self.area_id):
            assert row.room_id is not None
            self._enqueue(
                QueuedCaller(
                    row.id,
                    row.room_id,
                    row.details,
                    row.status,
                    _epoch(row.arrived_at),
                    _epoch(row.queued_at),
                )
            )
            # Rooms restore themselves; make sure each waiting caller's room is running again.
            await self.ref(addresses.ROOMS).ask(OpenRoom(row.room_id))
        if self.watchers:  # restarted after a crash: the dashboards' lists may be stale
            self._broadcast(self._snapshot())

    def _snapshot(self) -> Push:
        return Push(
            "queue.snapshot",
            {"area": self.area_id, "callers": [c.view() for c in self.queue.values()]},
        )

    @handles(ShowQueue)
    async def _show_queue(self, message: ShowQueue) -> None:
        snapshot = self._snapshot()
        for conn in message.conns:
            if conn in self.watchers:
                with contextlib.suppress(ActorError):  # gone: _broadcast drops it next time
                    self.ref(conn).tell(snapshot)

    # -- dispatch ---------------------------------------------------------------------------------
    @handles(Inbound)
    async def _on_inbound(self, message: Inbound) -> object:
        handler = self._inbound.get(message.type)
        if handler is None:
            raise Refusal(refusals.UNKNOWN_TYPE, f"a waiting area does not handle {message.type}")
        result: object = await handler(self, message)
        return result

    @handles(DescribeArea)
    async def _on_describe(self, message: DescribeArea) -> AreaPublic:
        return self._describe()

    @handles(DescribeForLeaflet)
    async def _on_leaflet(self, message: DescribeForLeaflet) -> AreaLeaflet:
        self._require(message.principal)
        return AreaLeaflet(
            id=self.area_id,
            name=self.config.name,
            slug=self.config.slug,
            time_zone=self.config.time_zone,
            opening_hours=tuple((h.weekday, h.opens, h.closes) for h in self.config.opening_hours),
        )

    @handles(CallerUpdate)
    async def _on_caller_update(self, message: CallerUpdate) -> None:
        self._caller_update(message)

    @handles(CallerGone)
    async def _on_caller_gone(self, message: CallerGone) -> None:
        self._remove(message.caller_id)

    @handles(HoldFromCall)
    async def _on_hold_from_call(self, message: HoldFromCall) -> dict[str, Any]:
        return await self._hold_caller(message.principal, message.caller_id, message.remote_addr)

    @handles(ConnectionClosed)
    async def _on_connection_closed(self, message: ConnectionClosed) -> None:
        self.watchers.discard(message.conn)

    @handles(ReloadArea)
    async def _on_reload(self, message: ReloadArea) -> None:
        # Settings changed in storage: re-read them in place, so every waiting caller and every
        # watching provider stays (a restart would drop the watchers).
        await self._load_settings()

    # -- the public side --------------------------------------------------------------------------
    def _open_now(self) -> bool:
        return self.config.active and is_open(
            datetime.now(UTC), self.config.time_zone, self.config.opening_hours, self.closures
        )

    def _describe(self) -> AreaPublic:
        now = datetime.now(UTC)
        upcoming = next_opening(
            now, self.config.time_zone, self.config.opening_hours, self.closures
        )
        return AreaPublic(
            id=self.area_id,
            name=self.config.name,
            slug=self.config.slug,
            unit_id=self.config.unit_id,
            time_zone=self.config.time_zone,
            open_now=self._open_now(),
            next_opening=upcoming.isoformat() if upcoming else None,
            form_fields=tuple(
                {"key": f.key, "label": f.label, "kind": f.kind, "required": f.required}
                for f in self.config.form_fields
            ),
            consent_text=self.config.consent_text,
            active=self.config.active,
        )

    def _clean_details(self, raw: dict[str, str]) -> dict[str, str]:
        details: dict[str, str] = {}
        for spec in self.config.form_fields:
            value = str(raw.get(spec.key, "")).strip()
            if len(value) > MAX_FIELD_LENGTH:
                raise Refusal(refusals.BAD_FIELD, f"{spec.label} is too long")
            if not value:
                if spec.required:
                    raise Refusal(refusals.MISSING_FIELD, f"{spec.label} is required")
                continue
            details[spec.key] = value
        return details

    @handles(Arrive)
    async def _arrive(self, msg: Arrive) -> ArrivalTicket:
        """Admit this arrival and every arrival queued right behind it as one batch.

        The batch is persisted in one transaction (one commit, one fsync) before any of them is
        acknowledged, so an acknowledged arrival survives a restart; under load that one commit
        per batch instead of two per arrival is what lets an area keep up (bench/README.md). The
        first message of another kind stays queued and is handled next, in order; if admitting
        crashes, the runtime answers the taken arrivals with ``ActorCrashed``.
        """
        batch = self.take_queued(Arrive, MAX_ARRIVAL_BATCH - 1)
        outcomes = await self._admit([msg, *(pending.message for pending in batch)])
        for pending, outcome in zip(batch, outcomes[1:], strict=True):
            if isinstance(outcome, Refusal):
                pending.refuse(outcome)
            else:
                pending.reply(outcome)
        first = outcomes[0]
        if isinstance(first, Refusal):
            raise first
        return first

    async def _admit(self, arrivals: list[Arrive]) -> list[ArrivalTicket | Refusal]:
        """Check each arrival, persist the accepted ones together, open their rooms, publish."""
        outcomes: list[ArrivalTicket | Refusal | None] = []
        accepted: list[tuple[int, dict[str, str]]] = []
        requests: list[callers.ArrivalRequest] = []
        for index, arrival in enumerate(arrivals):
            try:
                details = self._check_arrival(arrival, len(self.queue) + len(accepted))
            except Refusal as refusal:
                outcomes.append(refusal)
                continue
            outcomes.append(None)
            accepted.append((index, details))
            requests.append(callers.ArrivalRequest(details, audit.ARRIVAL, arrival.remote_addr))
        registered = await callers.register_arrivals(self.store, self.area_id, requests)
        if registered:
            try:
                await self.ref(addresses.ROOMS).ask(OpenRooms(tuple(s for _, s in registered)))
            except AskTimeout:
                # The room host is behind (an overloaded node), not gone: the request stays in
                # its mailbox and the rooms start when it gets there. The arrivals are committed,
                # so they are acknowledged; crashing here would restart the area for nothing
                # and, area after area, take the whole node down.
                log.warning(
                    "area/%s: room host slow to open %d rooms", self.area_id, len(registered)
                )
        estimate = self._estimate()
        for (index, details), (stored, _) in zip(accepted, registered, strict=True):
            stamp = _epoch(stored.caller.arrived_at)
            entry = QueuedCaller(
                stored.caller.id,
                stored.room.id,
                details,
                "waiting",
                stamp,
                stamp,
            )
            self._enqueue(entry)
            self._publish(entry)
            if estimate is not None and estimate == self.told_estimate:  # a room starts at None
                self._tell_estimate(entry, estimate)
            outcomes[index] = ArrivalTicket(
                entry.id, stored.room.id, f"{stored.room.id}.{stored.token.raw}"
            )
        if estimate != self.told_estimate:
            # The recent waits aged out since the last join: everyone waiting, not only these
            # arrivals, now sees the new figure, so no two callers are shown different ones.
            self._tell_all_waiting(estimate)
        return [outcome for outcome in outcomes if outcome is not None]

    def _check_arrival(self, msg: Arrive, queued: int) -> dict[str, str]:
        """The cleaned form answers, or a `Refusal` saying why this arrival cannot wait here."""
        if not self.config.active:
            raise Refusal(
                refusals.INACTIVE, "this waiting area is not taking callers at the moment"
            )
        if not self._open_now():
            raise Refusal(refusals.CLOSED, "this waiting area is closed now")
        if queued >= MAX_QUEUE:
            raise Refusal(refusals.FULL, "this waiting area cannot take more callers right now")
        details = self._clean_details(msg.details)
        counted = msg.remote_addr not in NEVER_COUNTED
        if counted and (
            self.arrivals_by_address.blocked(msg.remote_addr)
            or self.arrivals_in_area.blocked(_WHOLE_AREA)
        ):
            raise Refusal(
                refusals.TOO_MANY_ARRIVALS, "too many arrivals from here; try again in a while"
            )
        if counted:
            self.arrivals_by_address.failed(msg.remote_addr)
            self.arrivals_in_area.failed(_WHOLE_AREA)
        return details

    # -- the providers' side ----------------------------------------------------------------------
    def _require(self, principal: Principal, role: Role = Role.PROVIDER) -> None:
        if not principal.has_role(role, self.place):
            # Not naming the area: an area of another organisation, and one that does not exist,
            # get the same answer (issue 15; the gateway says NOT_YOURS for a missing one).
            raise Refusal(refusals.FORBIDDEN, NOT_YOURS.format(role=role.value))

    def _caller(self, caller_id: str) -> QueuedCaller:
        entry = self.queue.get(caller_id)
        if entry is None:
            raise Refusal(refusals.NOT_FOUND, "that caller is no longer in this waiting area")
        return entry

    async def _watch(self, msg: Inbound) -> dict[str, Any]:
        self._require(msg.principal)
        self.watchers.add(msg.conn)
        return {
            "area": {"id": self.area_id, "name": self.config.name, "open": self._open_now()},
            "callers": [c.view() for c in self.queue.values()],
        }

    async def _unwatch(self, msg: Inbound) -> dict[str, Any]:
        self.watchers.discard(msg.conn)
        return {}

    async def _join(self, msg: Inbound) -> dict[str, Any]:
        self._require(msg.principal)
        entry = self._caller(msg.body["caller_id"])
        name = msg.principal.display_name
        if entry.status == "in_call" and entry.with_names and name not in entry.with_names:
            raise Refusal(
                refusals.ALREADY_JOINED,
                f"{', '.join(entry.with_names)} is already with this caller",
            )
        joined_from_queue = entry.status == "waiting"
        if entry.status != "in_call":
            await callers.set_status(self.store, entry.id, "in_call")
            entry.status = "in_call"
        entry.with_names = tuple(dict.fromkeys((*entry.with_names, name)))
        self.ref(addresses.room(entry.room_id)).tell(ProviderJoining(name, msg.principal.user_id))
        if joined_from_queue:
            now = datetime.now(UTC).timestamp()
            self.recent_waits.add(now, now - entry.queued_at)
            self._tell_estimates()
        await self._audit(msg, audit.JOIN, entry.id)
        self._publish(entry)
        return {"room": entry.room_id, "url": f"/call/{entry.room_id}"}

    async def _hold(self, msg: Inbound) -> dict[str, Any]:
        return await self._hold_caller(msg.principal, msg.body["caller_id"], msg.remote_addr)

    async def _hold_caller(
        self, principal: Principal, caller_id: str, remote_addr: str
    ) -> dict[str, Any]:
        """Put a caller in a call on hold: from the provider's list or from inside the call."""
        self._require(principal)
        entry = self._caller(caller_id)
        if entry.status != "in_call":
            raise Refusal(refusals.NOT_IN_CALL, "only a caller in a call can be put on hold")
        await callers.set_status(self.store, entry.id, "on_hold")
        entry.status = "on_hold"
        entry.with_names = ()
        self.ref(addresses.room(entry.room_id)).tell(HoldCaller())
        await self._record(principal, remote_addr, audit.HOLD, entry.id)
        self._publish(entry)
        return {}

    async def _end(self, msg: Inbound) -> dict[str, Any]:
        self._require(msg.principal)
        entry = self._caller(msg.body["caller_id"])
        with contextlib.suppress(ActorError):
            self.ref(addresses.room(entry.room_id)).tell(EndRoom("ended"))
        await callers.set_status(self.store, entry.id, "ended")
        await self._audit(msg, audit.END, entry.id)
        self._remove(entry.id)
        return {}

    async def _clear_unconnected(self, msg: Inbound) -> dict[str, Any]:
        """Remove every waiting caller who is not connected now (issue 15): after a flood of
        fake arrivals, or a morning of abandoned tabs. Their rooms end like ``caller.end``; a
        caller who comes back finds "this call has ended". One audit entry with the count."""
        self._require(msg.principal)
        gone = [e for e in self.queue.values() if e.status == "waiting" and not e.connected]
        if not gone:
            return {"removed": 0}
        await callers.end_callers(self.store, [e.id for e in gone])
        for entry in gone:
            with contextlib.suppress(ActorError):
                self.ref(addresses.room(entry.room_id)).tell(EndRoom("ended"))
            self._remove(entry.id)
        await self._audit(msg, audit.UNCONNECTED_REMOVED, "", {"removed": len(gone)})
        return {"removed": len(gone)}

    async def _transfer(self, msg: Inbound) -> dict[str, Any]:
        self._require(msg.principal)
        entry = self._caller(msg.body["caller_id"])
        target = str(msg.body["target_area"])
        if not target.isdigit() or int(target) == self.area_id:
            raise Refusal(refusals.BAD_TARGET, "choose another waiting area of this unit")
        if entry.status == "in_call":
            raise Refusal(
                refusals.IN_CALL, "put the caller on hold or end the call before transferring"
            )
        try:
            await self.ref(addresses.area(int(target))).ask(
                TransferIn(
                    entry.id,
                    entry.room_id,
                    entry.details,
                    entry.arrived_at,
                    self.area_id,
                    self.config.name,
                    self.config.unit_id,
                    msg.principal,
                )
            )
        except Refusal:
            raise
        except ActorError as error:
            raise Refusal(refusals.NOT_FOUND, "that waiting area is not available") from error
        await self._audit(msg, audit.TRANSFER, entry.id, {"to_area": int(target)})
        self._remove(entry.id)
        return {}

    @handles(TransferIn)
    async def _transfer_in(self, msg: TransferIn) -> dict[str, Any]:
        if msg.from_unit_id != self.config.unit_id:
            raise Refusal(
                refusals.OTHER_UNIT, "callers can only move between areas of the same unit"
            )
        # Also as storage holds the rights now, not only as the dashboard's socket held them
        # (issue 15): a role revoked by another process, or while its GrantsChanged is on its way.
        current = msg.principal
        if current.user_id is not None and current.user_id.isascii() and current.user_id.isdigit():
            current = await principal_of(self.store, int(current.user_id), current.display_name)
        if not (
            msg.principal.has_role(Role.REFERRER, self.place)
            and current.has_role(Role.REFERRER, self.place)
        ):
            raise Refusal(
                refusals.FORBIDDEN, f"you are not a service referrer in {self.config.name}"
            )
        if not self.config.active:
            raise Refusal(
                refusals.INACTIVE, f"{self.config.name} is not taking callers at the moment"
            )
        row = await callers.transfer_caller(self.store, msg.caller_id, self.area_id)
        entry = QueuedCaller(
            msg.caller_id,
            msg.room_id,
            msg.details,
            row.status,
            msg.arrived_at,
            _epoch(row.queued_at),
            transferred_from=msg.from_area_name,
            connected=True,
        )
        self._enqueue(entry)
        self.ref(addresses.room(msg.room_id)).tell(
            AreaChanged(self.area_id, self.config.name, self.place)
        )
        self._publish(entry)
        return {}

    _inbound = {
        "area.watch": _watch,
        "area.unwatch": _unwatch,
        "caller.join": _join,
        "caller.hold": _hold,
        "caller.end": _end,
        "caller.transfer": _transfer,
        "area.clear_unconnected": _clear_unconnected,
    }

    # -- room reports -----------------------------------------------------------------------------
    def _caller_update(self, msg: CallerUpdate) -> None:
        entry = self.queue.get(msg.caller_id)
        if entry is None:
            return
        if msg.status is not None:
            entry.status = msg.status
        if msg.connected is not None:
            entry.connected = msg.connected
        if msg.with_names is not None:
            entry.with_names = msg.with_names
        if msg.precheck is not None:
            entry.precheck = msg.precheck
        self._publish(entry)

    def _estimate(self) -> float | None:
        return in_whole_minutes(self.recent_waits.estimate(datetime.now(UTC).timestamp()))

    def _tell_estimate(self, entry: QueuedCaller, estimate: float | None) -> None:
        """A waiting caller's own room hears the typical wait (issue 14): never about others.
        ``None`` (the recent waits aged out) is told too: the page stops showing a stale figure."""
        with contextlib.suppress(ActorError):
            self.ref(addresses.room(entry.room_id)).tell(WaitEstimate(estimate))

    def _tell_estimates(self) -> None:
        """After a join, every waiting caller, but only if the minutes they see change: telling
        each one on every join was a message and a websocket push per waiting caller per join
        (issue 17)."""
        estimate = self._estimate()
        if estimate != self.told_estimate:
            self._tell_all_waiting(estimate)

    def _tell_all_waiting(self, estimate: float | None) -> None:
        self.told_estimate = estimate
        for entry in self.queue.values():
            if entry.status == "waiting":
                self._tell_estimate(entry, estimate)

    def _enqueue(self, entry: QueuedCaller) -> None:
        """Queue a caller, numbering them after any namesake still queued here: 1 for a name
        nobody queued has, else one more than the highest of theirs."""
        self.queue[entry.id] = entry
        key = name_key(entry.details)
        if key:
            same = self.names.setdefault(key, {})
            entry.namesake = max(same.values(), default=0) + 1
            same[entry.id] = entry.namesake

    def _remove(self, caller_id: str) -> None:
        entry = self.queue.pop(caller_id, None)
        if entry is None:
            return
        key = name_key(entry.details)
        same = self.names.get(key)
        if same is not None:
            same.pop(caller_id, None)
            if not same:
                del self.names[key]
        self._broadcast(Push("queue.removed", {"area": self.area_id, "id": caller_id}))

    def _publish(self, entry: QueuedCaller) -> None:
        self._broadcast(Push("queue.caller", {"area": self.area_id, "caller": entry.view()}))

    def _broadcast(self, event: Push) -> None:
        for conn in list(self.watchers):
            try:
                self.ref(conn).tell(event)
            except ActorError:
                # Gone, or too slow to read (its connection closes itself): stop pushing to it.
                self.watchers.discard(conn)

    async def _audit(
        self, msg: Inbound, action: str, subject: str, details: dict[str, Any] | None = None
    ) -> None:
        await self._record(msg.principal, msg.remote_addr, action, subject, details)

    async def _record(
        self,
        principal: Principal,
        remote_addr: str,
        action: str,
        subject: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        await audit.append(
            self.store,
            action,
            actor_user_id=int(principal.user_id) if principal.user_id else None,
            area_id=self.area_id,
            subject=subject,
            remote_addr=remote_addr,
            details=details,
        )


#: Seconds the host waits for an area on another node to re-read its settings: shorter than the
#: admin's ``RELOAD_TIMEOUT`` (5 s), so the save is answered even when that node is away.
REMOTE_RELOAD_TIMEOUT = 3.0


class AreaHost(Actor):
    """``areas``: starts one actor per area, resolves public slugs, lists areas per provider.

    Inactive areas run too: they refuse new arrivals (their page says they are not taking callers)
    but providers keep serving the callers already waiting there.

    It is the placement authority for areas on this node; with several nodes, placement moves to a
    shared registry and this actor only starts the areas placed here.
    """

    def __init__(self, store: Store, supervisor: Supervisor) -> None:
        super().__init__()
        self.store = store
        self.supervisor = supervisor
        self.by_slug: dict[str, int] = {}
        #: Each area's watchers, kept here across the area's restarts (see WaitingArea.watchers).
        self.watchers: dict[int, set[str]] = {}

    async def on_start(self) -> None:
        for config in await area_store.list_areas(self.store, include_inactive=True):
            await self._place(config.id)

    async def _place(self, area_id: int, *, reload_elsewhere: bool = False) -> None:
        config = await area_store.get_area(self.store, area_id)
        self.by_slug = {s: i for s, i in self.by_slug.items() if i != area_id}
        self.by_slug[config.slug] = area_id
        address = addresses.area(area_id)
        if address in self.supervisor.children():
            # Edited settings: the running actor re-reads them and keeps its queue and watchers.
            await self.ref(address).ask(ReloadArea(area_id))
        else:
            watchers = self.watchers.setdefault(area_id, set())
            await self.supervisor.start_child(
                ChildSpec(
                    address,
                    lambda: WaitingArea(self.store, area_id, watchers),
                    Restart.PERMANENT,
                )
            )
            if reload_elsewhere and address not in self.supervisor.children():
                # Placed on another node (a cluster): the registry routes the reload there.
                await self._reload_elsewhere(address, area_id)

    async def _reload_elsewhere(self, address: str, area_id: int) -> None:
        """Have the area running on another node re-read its settings; a failure is logged, not
        raised: the edit is stored, and the area reads it when it starts again."""
        try:
            await self.ref(address).ask(ReloadArea(area_id), timeout=REMOTE_RELOAD_TIMEOUT)
        except ActorError as exc:
            log.warning("%s keeps its old settings until it restarts: %r", address, exc)

    @handles(FindArea)
    async def _find(self, message: FindArea) -> str:
        """The area at a link. A slug this node does not know may be one made through another
        node (a new area, a new link): the store is asked before the link is refused. A slug it
        knows may have been replaced elsewhere; the page checks it against the area's own
        (`web.patient`) and has this host re-read the area (`ReloadArea`) when they differ."""
        area_id = self.by_slug.get(message.slug)
        if area_id is None:
            config = await area_store.get_area_by_slug(self.store, message.slug)
            if config is None:
                raise Refusal(refusals.NOT_FOUND, "there is no waiting area at this link")
            area_id = config.id
            await self._place(area_id)
        return addresses.area(area_id)

    @handles(AreasFor)
    async def _areas_for(self, message: AreasFor) -> list[AreaSummary]:
        """The areas this principal may serve, read from the store each time (one query): an
        area created or renamed through another node shows on dashboards served by this one."""
        units = {u.id: u.org_id for u in await orgs.list_units(self.store)}
        return [
            AreaSummary(area.id, area.name, area.unit_id, area.slug)
            for area in await area_store.list_areas(self.store, include_inactive=True)
            if message.principal.has_role(
                Role.PROVIDER,
                AreaPlace(str(area.id), str(area.unit_id), str(units.get(area.unit_id))),
            )
        ]

    @handles(ReloadArea)
    async def _reload(self, message: ReloadArea) -> None:
        await self._place(message.area_id, reload_elsewhere=True)

    @handles(AdoptArea)
    async def _adopt(self, message: AdoptArea) -> None:
        """Start an area another node handed over, with the connections that watched it there
        (its start sends them the queue again). Already running here (an arrival had it
        started first): the watchers are added and sent the queue all the same."""
        watchers = self.watchers.setdefault(message.area_id, set())
        new = tuple(sorted(set(message.watchers) - watchers))
        watchers.update(new)
        address = addresses.area(message.area_id)
        if address in self.supervisor.children():
            if new:
                with contextlib.suppress(ActorError):  # its mailbox is full: it is restarting
                    self.ref(address).tell(ShowQueue(new))
            return
        await self._place(message.area_id)

    @handles(GiveUpArea)
    async def _give_up(self, message: GiveUpArea) -> tuple[str, ...]:
        """Stop the area here (it drains its mailbox first); the connections that watched it."""
        await self.supervisor.stop_child(addresses.area(message.area_id))
        return tuple(sorted(self.watchers.pop(message.area_id, set())))
