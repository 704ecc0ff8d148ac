"""The on-demand queue's typed messages and wire shapes (issue 14), in one module.

Pages (the public Meet Now page, the staff lists and settings) and actors import these; the wire
messages (``ondemand.*``, ``session.start``) are documented in ``docs/protocol.md`` section
"On-demand", and the dictionaries the server pushes are built by the ``*_view`` helpers here, so the
page scripts and this module agree on one shape. Pure data: no trio, no storage.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from actors.principal import Principal

# -- states and field kinds ----------------------------------------------------------------------


class RequestState(enum.StrEnum):
    """Where a request is; the value is what lists and the patient's page show."""

    INTAKE = "intake"  #: the patient is walking the intake (already visible and claimable)
    WAITING = "waiting"  #: intake done, nobody has it yet: the virtual waiting room
    ASSIGNED = "assigned"  #: an administrator gave it to an on-call provider, who claims it
    CLAIMED = "claimed"  #: a provider or administrator has it; both are on the session page
    IN_SESSION = "in_session"  #: both pressed Start Session: media flows
    ENDED = "ended"  #: the session is over (final)
    DECLINED = "declined"  #: an administrator declined it (final)
    CANCELLED = "cancelled"  #: the patient left before anyone took it (final)


#: States a request is still in the list in (and can be claimed from, except ``claimed`` onward).
OPEN_STATES = frozenset({RequestState.INTAKE, RequestState.WAITING, RequestState.ASSIGNED})
#: States a request is listed in: open, or with someone but not over.
LISTED_STATES = OPEN_STATES | {RequestState.CLAIMED, RequestState.IN_SESSION}
FINAL_STATES = frozenset({RequestState.ENDED, RequestState.DECLINED, RequestState.CANCELLED})


class FieldKind(enum.StrEnum):
    """The kinds of intake field an organisation may configure."""

    TEXT = "text"
    CHOICE = "choice"  #: one of ``choices``
    DATE = "date"  #: ISO ``YYYY-MM-DD``
    PHONE = "phone"  #: digits, spaces, ``+ - ( )``; 6-20 digits
    CONSENT = "consent"  #: must be ``"yes"`` when required


@dataclass(frozen=True)
class IntakeField:
    key: str
    label: str
    kind: FieldKind
    required: bool = False
    choices: tuple[str, ...] = ()

    def view(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "kind": self.kind.value,
            "required": self.required,
            "choices": list(self.choices),
        }


@dataclass(frozen=True)
class IntakeStep:
    """One page of the intake ("setup guide"): saved as a whole when the patient completes it."""

    title: str
    fields: tuple[IntakeField, ...]

    def view(self) -> dict[str, Any]:
        return {"title": self.title, "fields": [f.view() for f in self.fields]}


#: The patient details Meet Now asks for before the intake (keys of ``StartRequest.details``).
DETAIL_NAME = "name"
DETAIL_EMAIL = "email"
DETAIL_PHONE = "phone"
DETAIL_REGION = "region"
DETAIL_KEYS = (DETAIL_NAME, DETAIL_EMAIL, DETAIL_PHONE, DETAIL_REGION)


# -- the host ("ondemand") ---------------------------------------------------------------------


@dataclass(frozen=True)
class FindQueue:
    """Asked of the host: the address of organisation ``org_id``'s queue (``ondemand/<org>``),
    started if need be; refuses ``not_found`` for an organisation that does not exist."""

    org_id: int


@dataclass(frozen=True)
class QueueWatcher:
    """A connection that watches an organisation's list, with what the queue checked when it
    watched (who, and whether as an administrator): handed to the queue's next copy."""

    conn: str
    user_id: int
    is_admin: bool


@dataclass(frozen=True)
class GiveUpQueue:
    """Stop ``ondemand/<org>`` on this node (its home is another node now); the host answers with
    the connections that watched it (:class:`QueueWatcher`), for the node that takes it over."""

    org_id: int


@dataclass(frozen=True)
class AdoptQueue:
    """Start ``ondemand/<org>`` on this node: another node handed it over, or asks for it to run
    here (its home). Sent to a node's ``node/<id>`` desk, which passes it to its host
    (``ondemand``). ``watchers`` watched it where it ran before: the queue sends each of them
    ``ondemand.snapshot`` when it starts here (or at once, if it already runs)."""

    org_id: int
    watchers: tuple[QueueWatcher, ...] = ()


# -- an organisation's queue ("ondemand/<org>") -----------------------------------------------


@dataclass(frozen=True)
class ShowList:
    """Send ``ondemand.snapshot`` to these connections, which have just become the queue's
    watchers while it ran (handed over from another node, found it already started here): without
    it their list would miss every request before them."""

    conns: tuple[str, ...]


@dataclass(frozen=True)
class DescribePublic:
    """For the public page: the organisation, its services and whether Meet Now is on."""


@dataclass(frozen=True)
class ServiceSummary:
    name: str
    slug: str = field(repr=False)  #: the waiting area's public link is ``/w/<slug>``


@dataclass(frozen=True)
class OnDemandPublic:
    org_id: int
    org_name: str
    enabled: bool
    steps: tuple[IntakeStep, ...]
    services: tuple[ServiceSummary, ...]
    #: Seconds, from recent claims; ``None`` until there is enough to say.
    estimate: float | None


@dataclass(frozen=True)
class StartRequest:
    """Meet Now: the patient's details (``DETAIL_KEYS``; ``name`` required, ``email`` optional for
    the decline email). Persisted before the reply; the request is listed at once (``intake``)."""

    details: dict[str, str] = field(repr=False)
    remote_addr: str = ""


@dataclass(frozen=True)
class RequestTicket:
    request_id: str
    room_id: str
    #: ``<room id>.<secret>``: the patient's websocket ``hello`` token, given out once.
    token: str = field(repr=False)


@dataclass(frozen=True)
class DescribeSettings:
    """For the settings page (administrators of the organisation only)."""

    principal: Principal


@dataclass(frozen=True)
class OnDemandSettings:
    org_id: int
    enabled: bool
    steps: tuple[IntakeStep, ...]
    #: Alert on-call providers and administrators when a request waits longer (seconds; 0: never).
    alert_after: int


@dataclass(frozen=True)
class SaveSettings:
    """Replace the intake and the alert threshold (administrators only; validated, audited).

    ``steps`` is raw page input: a list of ``{"title", "fields": [{"key", "label", "kind",
    "required", "choices"}]}``; refused ``invalid`` with the detail naming what is wrong."""

    principal: Principal
    enabled: bool
    steps: list[dict[str, Any]]
    alert_after: int
    remote_addr: str = ""


@dataclass(frozen=True)
class OnCallStatus:
    """Is this staff member on call in this organisation? Replies :class:`StaffStatus`."""

    principal: Principal


@dataclass(frozen=True)
class StaffStatus:
    on_call: bool
    is_admin: bool
    is_provider: bool
    #: Whether the On-Demand Requests list is theirs to see now (admin, or provider on call).
    sees_list: bool


# -- between the queue and a request's session ("room/<room id>") -----------------------------


@dataclass(frozen=True)
class SessionClaimed:
    """Queue -> session: ``user_id`` (``name``) has the request; let them in, pull the patient in."""

    user_id: str
    name: str


@dataclass(frozen=True)
class SessionDeclined:
    """Queue -> session: declined; the patient's page is told, then the call ends."""

    reason: str


@dataclass(frozen=True)
class QueueStatus:
    """Queue -> session: what the patient's page shows while waiting (never anyone else)."""

    state: RequestState
    estimate: float | None
    step: int


@dataclass(frozen=True)
class StepSubmitted:
    """Session -> queue: the patient completed intake step ``step`` (0-based) with ``values``."""

    request_id: str
    step: int
    values: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class SessionStarted:
    """Session -> queue: both pressed Start Session."""

    request_id: str


@dataclass(frozen=True)
class SessionEnded:
    """Session -> queue: the session ended (``call.end``, or the patient did not come back)."""

    request_id: str
    reason: str
    user_id: str | None = None


# -- wire views (what the server pushes; docs/protocol.md "On-demand") -------------------------


@dataclass
class RequestView:
    """One request as a watcher's list shows it."""

    id: str
    room: str
    state: RequestState
    created_at: float
    details: dict[str, str] = field(repr=False)
    case: dict[str, Any] = field(default_factory=dict, repr=False)
    steps_done: int = 0
    steps_total: int = 0
    claimed_by: str | None = None
    assigned_to: str | None = None

    def view(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.value,
            "created_at": self.created_at,
            "waited": max(0.0, now - self.created_at),
            "name": self.details.get(DETAIL_NAME, ""),
            "phone": self.details.get(DETAIL_PHONE, ""),
            "region": self.details.get(DETAIL_REGION, ""),
            "case": dict(self.case),
            "steps_done": self.steps_done,
            "steps_total": self.steps_total,
            "claimed_by": self.claimed_by,
            "assigned_to": self.assigned_to,
        }
