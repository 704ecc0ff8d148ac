"""On-demand queues: one actor per organisation (``ondemand/<org>``) and the host that starts them.

A queue owns its organisation's live requests, who watches the list (administrators, and providers
on call) and who is on call. Every change is written to storage first (``storage.ondemand``, whose
conditional UPDATEs make a claim, an assign and a decline of one request exclusive even across
processes), then pushed to the watchers as one upsert (``ondemand.request``) or removal
(``ondemand.removed``). The actor handles one message at a time, so inside a process two claims
of one request are decided in order without a lock; storage decides between processes.

Each request has its session (``room/<room id>``, :mod:`actors.ondemand.session`) from Meet Now on:
the patient waits there, and the queue tells it when someone claims it or it is declined. An alert
(a ringing notice) goes to the on-call providers and the administrators when a request has waited
longer than the organisation's threshold: a ``send_after`` timer per request, cancelled when it is
claimed or over. A restarted queue rebuilds all of this from storage.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from actors import addresses, refusals
from actors.admin.outbox import SendMessage
from actors.calls.media import MediaPort
from actors.inbound import ConnectionClosed, Inbound, Push
from actors.messages import StartAgain
from actors.ondemand import intake
from actors.ondemand.estimate import RecentWaits
from actors.ondemand.messages import (
    DETAIL_EMAIL,
    DETAIL_NAME,
    FINAL_STATES,
    AdoptQueue,
    DescribePublic,
    DescribeSettings,
    FindQueue,
    GiveUpQueue,
    IntakeStep,
    OnCallStatus,
    OnDemandPublic,
    OnDemandSettings,
    QueueStatus,
    QueueWatcher,
    RequestState,
    RequestTicket,
    RequestView,
    SaveSettings,
    ServiceSummary,
    SessionClaimed,
    SessionDeclined,
    SessionEnded,
    SessionStarted,
    ShowList,
    StaffStatus,
    StartRequest,
    StepSubmitted,
)
from actors.ondemand.session import RECONNECT_GRACE, OnDemandSession
from actors.principal import Principal, Role, Scope
from actors.staff.notices import Notify
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, Timer, handles
from runtime.supervisor import ChildSpec, Restart, Supervisor
from storage import audit, orgs
from storage import ondemand as store_od
from storage.db import Store
from storage.errors import NotFoundError

log = logging.getLogger(__name__)

#: Most requests one organisation holds live at once: a flood cannot exhaust memory.
MAX_LIVE = 5000
#: Where notices about the queue lead (the staff list page).
LIST_URL = "/ondemand"
#: The staff session page of a claimed request.
SESSION_URL = "/ondemand/session/{room}"
#: Longest alert threshold an organisation may set: a day.
MAX_ALERT_AFTER = 24 * 3600
#: Kinds of notice the queue sends (``staff.notice`` ``kind``).
NOTICE_ASSIGNED = "ondemand.assigned"
NOTICE_WAITING = "ondemand.waiting"
NOTICE_DECLINED = "ondemand.declined"
DECLINE_SUBJECT = "Your on-demand request / Ваш запит"


@dataclass(frozen=True)
class _AlertDue:
    """A request's alert timer: it has waited ``alert_after`` seconds."""

    request_id: str


def _epoch(request: store_od.Request) -> float:
    return request.created_at.timestamp()


def _user_id(principal: Principal) -> int:
    if not principal.is_staff or principal.user_id is None or not principal.user_id.isdigit():
        raise Refusal(refusals.FORBIDDEN, "only signed-in staff may do this")
    return int(principal.user_id)


async def start_session(
    actor: Actor,
    sessions: Supervisor,
    store: Store,
    room_id: str,
    media: MediaPort | None,
    grace: float,
    snapshot: store_od.Request | None = None,
) -> None:
    """Start ``room/<room_id>``'s session under ``sessions`` unless it runs here; from
    ``snapshot`` at first, from the store on every restart. What the queue does for its live
    requests, and the host for one whose node died (:class:`StartAgain`)."""
    address = addresses.room(room_id)
    if address in actor.registry:
        return
    first = [snapshot] if snapshot is not None else []

    def new_session() -> OnDemandSession:
        return OnDemandSession(store, room_id, media, grace, first.pop() if first else None)

    await sessions.start_child(ChildSpec(address, new_session, Restart.TRANSIENT))


class OnDemandQueue(Actor):
    """``ondemand/<org>``: see the module docstring."""

    def __init__(
        self,
        store: Store,
        org_id: int,
        sessions: Supervisor,
        media: MediaPort | None,
        grace: float = RECONNECT_GRACE,
        watchers: dict[str, QueueWatcher] | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.org_id = org_id
        self.sessions = sessions
        self.media = media
        self.grace = grace
        self.requests: dict[str, RequestView] = {}
        #: Who watches the list. The host's dict, like the mailbox that outlives a crash: a
        #: restarted queue still knows its watchers, and a queue handed to another node hands
        #: them over (``GiveUpQueue``).
        self.watchers: dict[str, QueueWatcher] = watchers if watchers is not None else {}
        self.on_call: dict[int, str] = {}
        self.alerts: dict[str, Timer] = {}
        self.waits = RecentWaits()

    # -- start ------------------------------------------------------------------------------------
    async def on_start(self) -> None:
        await self._load_structure()
        await self._load_settings()
        self.on_call = {
            s.user_id: s.name for s in await store_od.on_call_staff(self.store, self.org_id)
        }
        now = time.time()
        for wait in reversed(await store_od.recent_claim_waits(self.store, self.org_id)):
            self.waits.add(now, wait)
        for request in await store_od.list_live(self.store, self.org_id):
            self.requests[request.id] = self._view(request)
            await self._start_session(request, None)
            self._arm_alert(request.id)
        # Restarted after a crash, or handed over from another node: the lists its watchers
        # show may be stale or missing what came meanwhile.
        self.show_list(tuple(self.watchers))

    def show_list(self, conns: tuple[str, ...]) -> None:
        """Send each of ``conns`` (watchers already) the whole list as ``ondemand.snapshot``; a
        provider who is no longer on call (and not an administrator) stops watching instead."""
        for conn in conns:
            watcher = self.watchers.get(conn)
            if watcher is None:
                continue
            if not watcher.is_admin and watcher.user_id not in self.on_call:
                del self.watchers[conn]
                continue
            try:
                self.ref(conn).tell(
                    Push("ondemand.snapshot", self._listing(watcher.user_id, watcher.is_admin))
                )
            except ActorError:
                self.watchers.pop(conn, None)

    async def _load_structure(self) -> None:
        self.org_name, self.units, self.areas = await store_od.org_structure(
            self.store, self.org_id
        )

    async def _load_settings(self) -> None:
        settings = await store_od.get_settings(self.store, self.org_id)
        self.enabled = settings.enabled
        self.alert_after = settings.alert_after
        try:
            self.steps: tuple[IntakeStep, ...] = intake.parse_steps(settings.intake)
        except ValueError:  # stored by an older check: serve no intake rather than crash
            log.warning("ondemand/%s: stored intake does not parse; using none", self.org_id)
            self.steps = ()

    def _view(self, request: store_od.Request) -> RequestView:
        return RequestView(
            id=request.id,
            room=request.room_id,
            state=RequestState(request.state),
            created_at=_epoch(request),
            details=request.details,
            case=request.case_info,
            steps_done=request.steps_done,
            steps_total=request.steps_total,
            claimed_by=request.claimed_name,
            assigned_to=request.assigned_name,
        )

    async def _start_session(
        self, request: store_od.Request, snapshot: store_od.Request | None
    ) -> None:
        await start_session(
            self, self.sessions, self.store, request.room_id, self.media, self.grace, snapshot
        )

    # -- who is asking ----------------------------------------------------------------------------
    def _roles(self, principal: Principal) -> tuple[bool, bool]:
        """(administrator here, provider here) from the principal's grants."""
        org = str(self.org_id)
        admin = provider = False
        for grant in principal.grants if principal.is_staff else ():
            if not grant.scope_id.isdigit():
                continue
            scope_id = int(grant.scope_id)
            if grant.scope is Scope.ORG and grant.scope_id == org:
                admin = admin or grant.role is Role.ORG_ADMIN
                provider = provider or grant.role in (Role.ORG_ADMIN, Role.PROVIDER)
            elif grant.scope is Scope.UNIT and scope_id in self.units:
                admin = admin or grant.role is Role.UNIT_ADMIN
                provider = provider or grant.role in (Role.UNIT_ADMIN, Role.PROVIDER)
            elif grant.scope is Scope.AREA and scope_id in self.areas:
                provider = provider or grant.role is Role.PROVIDER
        return admin, provider

    async def _who(self, principal: Principal) -> tuple[int, bool, bool]:
        """User id, admin, provider; reread the organisation once if a grant names a unit or area
        it does not know yet (one created since the queue started)."""
        user_id = _user_id(principal)
        admin, provider = self._roles(principal)
        if not provider and any(
            g.scope is not Scope.ORG and g.scope_id.isdigit() for g in principal.grants
        ):
            await self._load_structure()
            admin, provider = self._roles(principal)
        return user_id, admin, provider

    async def _staff_here(self, principal: Principal) -> tuple[int, bool]:
        """An administrator, or a provider on call; refuse anyone else."""
        user_id, admin, provider = await self._who(principal)
        if not admin:
            if not provider:
                raise Refusal(refusals.FORBIDDEN, f"you do not work in {self.org_name}")
            if user_id not in self.on_call:
                raise Refusal(refusals.NOT_ON_CALL, "switch On-Call on to see on-demand requests")
        return user_id, admin

    async def _admin(self, principal: Principal) -> int:
        user_id, admin, _ = await self._who(principal)
        if not admin:
            raise Refusal(refusals.FORBIDDEN, f"only administrators of {self.org_name} may do this")
        return user_id

    async def _live(self, request_id: str) -> RequestView:
        """A live request of this organisation; another organisation's reads as missing."""
        view = self.requests.get(request_id)
        if view is not None:
            return view
        try:
            request = await store_od.request_in_org(self.store, self.org_id, request_id)
        except NotFoundError:
            raise Refusal(refusals.NOT_FOUND, "there is no such on-demand request") from None
        if request.state in store_od.FINAL:
            raise Refusal(refusals.ENDED, f"this request is over ({request.state})")
        # Live in storage but not here: another process holds this organisation's queue.
        raise Refusal(refusals.UNAVAILABLE, "this request is handled by another server")

    # -- the public side --------------------------------------------------------------------------
    @handles(DescribePublic)
    async def _describe_public(self, message: DescribePublic) -> OnDemandPublic:
        services = await store_od.services(self.store, self.org_id)
        return OnDemandPublic(
            self.org_id,
            self.org_name,
            self.enabled,
            self.steps,
            tuple(ServiceSummary(name, slug) for name, slug in services),
            self.waits.estimate(time.time()),
        )

    @handles(StartRequest)
    async def _start_request(self, message: StartRequest) -> RequestTicket:
        if not self.enabled:
            raise Refusal(refusals.INACTIVE, f"{self.org_name} is not taking on-demand requests")
        if len(self.requests) >= MAX_LIVE:
            raise Refusal(refusals.FULL, "the queue cannot take more requests right now")
        try:
            details = intake.check_details(message.details)
        except ValueError as error:
            raise Refusal(refusals.INVALID, str(error)) from None
        created = await store_od.create_request(self.store, self.org_id, details, len(self.steps))
        request = created.request
        view = self._view(request)
        self.requests[request.id] = view
        await self._start_session(request, request)
        self._tell_session(view, self._status(view))
        self._arm_alert(request.id)
        self._publish(view)
        return RequestTicket(request.id, request.room_id, f"{request.room_id}.{created.raw_token}")

    # -- the patient's intake ---------------------------------------------------------------------
    @handles(StepSubmitted)
    async def _step(self, message: StepSubmitted) -> dict[str, Any]:
        view = await self._live(message.request_id)
        total = len(self.steps)
        if not 0 <= message.step < total or message.step not in (
            view.steps_done,
            view.steps_done - 1,
        ):
            raise Refusal(refusals.BAD_FIELD, f"the next step is {view.steps_done}")
        try:
            values = intake.check_answers(self.steps[message.step], message.values)
        except ValueError as error:
            raise Refusal(refusals.INVALID, str(error)) from None
        outcome = await store_od.save_step(self.store, view.id, message.step, values, total)
        if not outcome.won:
            raise Refusal(refusals.BAD_FIELD, f"the next step is {outcome.request.steps_done}")
        self._refresh(view, outcome.request)
        self._publish(view)
        return {"step": view.steps_done, "steps_total": view.steps_total, "state": view.state.value}

    # -- the session tells ------------------------------------------------------------------------
    @handles(SessionStarted)
    async def _session_started(self, message: SessionStarted) -> None:
        view = await self._live(message.request_id)
        outcome = await store_od.start_session(self.store, view.id)
        self._refresh(view, outcome.request)
        await self._audit(audit.ONDEMAND_START, view.id, user_id=None)
        self._publish(view)

    @handles(SessionEnded)
    async def _session_ended(self, message: SessionEnded) -> None:
        view = self.requests.get(message.request_id)
        if view is None:
            return
        request = await store_od.get_request(self.store, view.id)
        if request.state not in store_od.FINAL:  # ended without the policy's write (a crash)
            taken = request.state in ("claimed", "in_session")
            state = RequestState.ENDED if taken else RequestState.CANCELLED
            request = (
                await store_od.finish(self.store, view.id, state.value, message.reason)
            ).request
        if request.state == RequestState.ENDED.value:
            await self._audit(
                audit.ONDEMAND_END,
                view.id,
                user_id=int(message.user_id) if message.user_id else None,
                reason=message.reason,
            )
        self._remove(view.id, RequestState(request.state))

    # -- staff, over the websocket ----------------------------------------------------------------
    @handles(Inbound)
    async def _inbound(self, message: Inbound) -> dict[str, Any]:
        handler = self._wire.get(message.type)
        if handler is None:
            raise Refusal(
                refusals.UNKNOWN_TYPE, f"an on-demand queue does not handle {message.type}"
            )
        result: dict[str, Any] = await handler(self, message)
        return result

    @handles(ConnectionClosed)
    async def _closed(self, message: ConnectionClosed) -> None:
        self.watchers.pop(message.conn, None)

    @handles(ShowList)
    async def _show_list(self, message: ShowList) -> None:
        self.show_list(message.conns)

    async def _watch(self, msg: Inbound) -> dict[str, Any]:
        user_id, admin = await self._staff_here(msg.principal)
        self.watchers[msg.conn] = QueueWatcher(msg.conn, user_id, admin)
        return self._listing(user_id, admin)

    def _listing(self, user_id: int, admin: bool) -> dict[str, Any]:
        """The whole list as one watcher sees it: the answer to ``ondemand.watch``."""
        now = time.time()
        return {
            "org": {"id": self.org_id, "name": self.org_name},
            "on_call": user_id in self.on_call,
            "is_admin": admin,
            "estimate": self.waits.estimate(now),
            "alert_after": self.alert_after,
            "providers": self._providers_view(),
            "requests": [v.view(now) for v in self._ordered()],
        }

    async def _unwatch(self, msg: Inbound) -> dict[str, Any]:
        self.watchers.pop(msg.conn, None)
        return {}

    async def _oncall(self, msg: Inbound) -> dict[str, Any]:
        user_id, admin, provider = await self._who(msg.principal)
        if not provider:
            raise Refusal(refusals.FORBIDDEN, f"you are not a provider in {self.org_name}")
        on = bool(msg.body["on"])
        await store_od.set_on_call(self.store, self.org_id, user_id, on)
        if on:
            self.on_call[user_id] = msg.principal.display_name
        else:
            self.on_call.pop(user_id, None)
            if not admin:
                for conn, watcher in list(self.watchers.items()):
                    if watcher.user_id == user_id:
                        del self.watchers[conn]
        self._broadcast(
            Push("ondemand.providers", {"org": self.org_id, "providers": self._providers_view()})
        )
        return {"on": on, "sees_list": admin or on}

    async def _claim(self, msg: Inbound) -> dict[str, Any]:
        user_id, _ = await self._staff_here(msg.principal)
        view = await self._live(str(msg.body["request_id"]))
        first = view.claimed_by is None
        outcome = await store_od.claim(self.store, self.org_id, view.id, user_id)
        if not outcome.won:
            self._refresh(view, outcome.request)
            raise Refusal(
                refusals.ALREADY_CLAIMED, f"{self._holder(outcome.request)} has this request"
            )
        self._refresh(view, outcome.request)
        self._cancel_alert(view.id)
        if first and outcome.request.claimed_at is not None:
            self.waits.add(time.time(), outcome.request.claimed_at.timestamp() - view.created_at)
        name = outcome.request.claimed_name or msg.principal.display_name
        # Told, never asked: the session asks the queue (a step, the start), and two actors asking
        # each other would wait on each other. The claimer's room.enter reaches the same mailbox
        # after this (they only learn the room from the reply), so the session knows them.
        self._tell_session(view, SessionClaimed(str(user_id), name))
        if first:
            await self._audit(audit.ONDEMAND_CLAIM, view.id, user_id, msg.remote_addr)
            self._publish(view)
            self._tell_estimates()
        return {"room": view.room, "url": SESSION_URL.format(room=view.room)}

    async def _assign(self, msg: Inbound) -> dict[str, Any]:
        admin_id = await self._admin(msg.principal)
        view = await self._live(str(msg.body["request_id"]))
        target = int(str(msg.body["user_id"]))
        staff = {s.user_id: s.name for s in await store_od.providers(self.store, self.org_id)}
        if target not in staff:
            raise Refusal(refusals.NOT_FOUND, f"there is no such provider in {self.org_name}")
        if target not in self.on_call:
            raise Refusal(refusals.NOT_ON_CALL, f"{staff[target]} is not on call")
        outcome = await store_od.assign(self.store, self.org_id, view.id, target)
        self._refresh(view, outcome.request)
        if not outcome.won:
            raise Refusal(
                refusals.ALREADY_CLAIMED, f"{self._holder(outcome.request)} has this request"
            )
        self._tell_session(view, self._status(view))
        await self._audit(
            audit.ONDEMAND_ASSIGN, view.id, admin_id, msg.remote_addr, assigned_to=target
        )
        self._notify(
            target,
            NOTICE_ASSIGNED,
            f"{view.details.get(DETAIL_NAME, 'A patient')}'s on-demand request was assigned to you",
            ring=True,
        )
        self._publish(view)
        return {}

    async def _decline(self, msg: Inbound) -> dict[str, Any]:
        admin_id = await self._admin(msg.principal)
        view = await self._live(str(msg.body["request_id"]))
        reason = str(msg.body.get("reason") or "").strip()
        outcome = await store_od.decline(self.store, self.org_id, view.id, reason)
        if not outcome.won:
            self._refresh(view, outcome.request)
            raise Refusal(
                refusals.ALREADY_CLAIMED, f"{self._holder(outcome.request)} has this request"
            )
        self._cancel_alert(view.id)
        self._tell_session(view, SessionDeclined(reason))
        await self._audit(audit.ONDEMAND_DECLINE, view.id, admin_id, msg.remote_addr)
        self._email_decline(view, reason, admin_id)
        name = view.details.get(DETAIL_NAME, "A patient")
        for admin in await store_od.admins(self.store, self.org_id):
            self._notify(
                admin.user_id,
                NOTICE_DECLINED,
                f"{name}'s on-demand request was declined by {msg.principal.display_name}",
                ring=False,
            )
        self._remove(view.id, RequestState.DECLINED)
        return {}

    _wire = {
        "ondemand.watch": _watch,
        "ondemand.unwatch": _unwatch,
        "ondemand.oncall": _oncall,
        "ondemand.claim": _claim,
        "ondemand.assign": _assign,
        "ondemand.decline": _decline,
    }

    # -- pages ------------------------------------------------------------------------------------
    @handles(OnCallStatus)
    async def _status_of(self, message: OnCallStatus) -> StaffStatus:
        user_id, admin, provider = await self._who(message.principal)
        on = user_id in self.on_call
        return StaffStatus(on, admin, provider, admin or (provider and on))

    @handles(DescribeSettings)
    async def _describe_settings(self, message: DescribeSettings) -> OnDemandSettings:
        await self._admin(message.principal)
        return OnDemandSettings(self.org_id, self.enabled, self.steps, self.alert_after)

    @handles(SaveSettings)
    async def _save_settings(self, message: SaveSettings) -> OnDemandSettings:
        user_id = await self._admin(message.principal)
        try:
            steps = intake.parse_steps(message.steps)
        except ValueError as error:
            raise Refusal(refusals.INVALID, str(error)) from None
        if (
            isinstance(message.alert_after, bool)
            or not isinstance(message.alert_after, int)
            or not 0 <= message.alert_after <= MAX_ALERT_AFTER
        ):
            raise Refusal(refusals.INVALID, f"the alert threshold is 0-{MAX_ALERT_AFTER} seconds")
        await store_od.save_settings(
            self.store,
            self.org_id,
            bool(message.enabled),
            intake.steps_config(steps),
            message.alert_after,
        )
        await self._audit(audit.ONDEMAND_SETTINGS, "", user_id, message.remote_addr)
        await self._load_settings()
        for request_id in list(self.alerts):
            self._cancel_alert(request_id)
        for view in self.requests.values():
            self._arm_alert(view.id)
        return OnDemandSettings(self.org_id, self.enabled, self.steps, self.alert_after)

    # -- alerts -----------------------------------------------------------------------------------
    def _arm_alert(self, request_id: str) -> None:
        view = self.requests.get(request_id)
        if (
            view is None
            or self.alert_after <= 0
            or view.state
            not in (
                RequestState.INTAKE,
                RequestState.WAITING,
                RequestState.ASSIGNED,
            )
        ):
            return
        delay = max(0.0, view.created_at + self.alert_after - time.time())
        self._cancel_alert(request_id)
        self.alerts[request_id] = self.send_after(delay, _AlertDue(request_id))

    def _cancel_alert(self, request_id: str) -> None:
        timer = self.alerts.pop(request_id, None)
        if timer is not None:
            timer.cancel()

    @handles(_AlertDue)
    async def _alert_due(self, message: _AlertDue) -> None:
        self.alerts.pop(message.request_id, None)
        view = self.requests.get(message.request_id)
        if view is None or view.claimed_by is not None:
            return
        minutes = max(1, round(self.alert_after / 60))
        text = (
            f"{view.details.get(DETAIL_NAME, 'A patient')} has waited more than "
            f"{minutes} min for an on-demand session"
        )
        targets = set(self.on_call) | {
            a.user_id for a in await store_od.admins(self.store, self.org_id)
        }
        for user_id in sorted(targets):
            self._notify(user_id, NOTICE_WAITING, text, ring=True)

    # -- telling ----------------------------------------------------------------------------------
    def _refresh(self, view: RequestView, request: store_od.Request) -> None:
        fresh = self._view(request)
        view.state = fresh.state
        view.case = fresh.case
        view.steps_done = fresh.steps_done
        view.steps_total = fresh.steps_total
        view.claimed_by = fresh.claimed_by
        view.assigned_to = fresh.assigned_to

    def _holder(self, request: store_od.Request) -> str:
        if request.claimed_name:
            return request.claimed_name
        if request.assigned_name and request.state == RequestState.ASSIGNED.value:
            return request.assigned_name
        return "someone else"

    def _ordered(self) -> list[RequestView]:
        """Longest wait first."""
        return sorted(self.requests.values(), key=lambda v: (v.created_at, v.id))

    def _providers_view(self) -> list[dict[str, str]]:
        return [
            {"id": str(user_id), "name": name}
            for user_id, name in sorted(self.on_call.items(), key=lambda item: (item[1], item[0]))
        ]

    def _status(self, view: RequestView) -> QueueStatus:
        return QueueStatus(view.state, self.waits.estimate(time.time()), view.steps_done)

    def _tell_session(self, view: RequestView, message: object) -> None:
        with contextlib.suppress(ActorError):
            self.ref(addresses.room(view.room)).tell(message)

    def _tell_estimates(self) -> None:
        """After a claim the estimate moves: every patient still waiting sees their own."""
        for view in self.requests.values():
            if view.claimed_by is None:
                self._tell_session(view, self._status(view))

    def _publish(self, view: RequestView) -> None:
        self._broadcast(
            Push("ondemand.request", {"org": self.org_id, "request": view.view(time.time())})
        )

    def _remove(self, request_id: str, state: RequestState) -> None:
        self._cancel_alert(request_id)
        if self.requests.pop(request_id, None) is not None:
            self._broadcast(
                Push(
                    "ondemand.removed", {"org": self.org_id, "id": request_id, "state": state.value}
                )
            )

    def _broadcast(self, event: Push) -> None:
        for conn in list(self.watchers):
            try:
                self.ref(conn).tell(event)
            except ActorError:
                self.watchers.pop(conn, None)

    def _notify(self, user_id: int, kind: str, text: str, ring: bool) -> None:
        with contextlib.suppress(ActorError):
            self.ref(addresses.NOTICES).tell(
                Notify(self.org_id, user_id, kind, text, LIST_URL, ring)
            )

    def _email_decline(self, view: RequestView, reason: str, admin_id: int) -> None:
        email = view.details.get(DETAIL_EMAIL)
        if not email:
            return
        because = f"\n\nReason: {reason}" if reason else ""
        because_uk = f"\n\nПричина: {reason}" if reason else ""
        body = (
            f"Your request for an on-demand consultation with {self.org_name} was declined."
            f"{because}\n\n"
            f"Ваш запит на консультацію з {self.org_name} відхилено.{because_uk}"
        )
        with contextlib.suppress(ActorError):
            self.ref(addresses.OUTBOX).tell(
                SendMessage("email", email, DECLINE_SUBJECT, body, requested_by_user_id=admin_id)
            )

    async def _audit(
        self,
        action: str,
        request_id: str,
        user_id: int | None,
        remote_addr: str = "",
        **details: Any,
    ) -> None:
        await audit.append(
            self.store,
            action,
            actor_kind="user" if user_id is not None else "system",
            actor_user_id=user_id,
            subject=f"ondemand:{request_id}" if request_id else f"ondemand-org:{self.org_id}",
            remote_addr=remote_addr,
            details={"org": self.org_id, **details},
        )


class OnDemandHost(Actor):
    """``ondemand``: starts one queue per organisation (at boot every organisation's, so staff can
    address ``ondemand/<org>`` at once; later ones on :class:`FindQueue`)."""

    def __init__(
        self,
        store: Store,
        queues: Supervisor,
        sessions: Supervisor,
        media: MediaPort | None,
        grace: float = RECONNECT_GRACE,
    ) -> None:
        super().__init__()
        self.store = store
        self.queues = queues
        self.sessions = sessions
        self.media = media
        self.grace = grace
        #: Each queue's watchers, kept here across the queue's restarts (``OnDemandQueue.watchers``).
        self.watchers: dict[int, dict[str, QueueWatcher]] = {}

    async def on_start(self) -> None:
        for org in await orgs.list_organisations(self.store):
            await self._place(org.id)

    async def _place(self, org_id: int) -> str:
        address = addresses.ondemand(org_id)
        if address not in self.queues.children():
            watchers = self.watchers.setdefault(org_id, {})
            await self.queues.start_child(
                ChildSpec(
                    address,
                    lambda: OnDemandQueue(
                        self.store, org_id, self.sessions, self.media, self.grace, watchers
                    ),
                )
            )
        return address

    @handles(AdoptQueue)
    async def _adopt(self, message: AdoptQueue) -> None:
        """Start a queue another node handed over, with the connections that watched it there
        (its start sends them the list). Already running here (a page had it started first):
        the watchers are added and sent the list all the same."""
        watchers = self.watchers.setdefault(message.org_id, {})
        new = {w.conn: w for w in message.watchers if w.conn not in watchers}
        watchers.update(new)
        address = addresses.ondemand(message.org_id)
        if address in self.queues.children():
            if new:
                with contextlib.suppress(ActorError):  # its mailbox is full: it is restarting
                    self.ref(address).tell(ShowList(tuple(sorted(new))))
            return
        await self._place(message.org_id)

    @handles(GiveUpQueue)
    async def _give_up(self, message: GiveUpQueue) -> tuple[QueueWatcher, ...]:
        """Stop the queue here (it drains its mailbox first); the connections that watched it."""
        await self.queues.stop_child(addresses.ondemand(message.org_id))
        watchers = self.watchers.pop(message.org_id, {})
        return tuple(watchers[conn] for conn in sorted(watchers))

    @handles(StartAgain)
    async def _start_again(self, message: StartAgain) -> None:
        """An on-demand session whose node died while its queue lives on: start it again (here,
        or learn who claimed it), restored from its request (``OnDemandPolicy.restore``: intake,
        waiting or in session). A request that is over, or a room that is not a session, starts
        nothing. (A queue that died with it starts its live sessions itself.)"""
        try:
            request = await store_od.by_room(self.store, message.room_id)
        except NotFoundError:
            raise Refusal(refusals.NOT_FOUND, "there is no such on-demand session") from None
        if request.state in FINAL_STATES:
            raise Refusal(refusals.CLOSED, "this session has ended")
        await start_session(
            self, self.sessions, self.store, request.room_id, self.media, self.grace
        )

    @handles(FindQueue)
    async def _find(self, message: FindQueue) -> str:
        try:
            await orgs.get_organisation(self.store, message.org_id)
        except NotFoundError:
            raise Refusal(refusals.NOT_FOUND, "there is no such organisation") from None
        return await self._place(message.org_id)
