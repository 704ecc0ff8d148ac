"""What the server needs to run as one node of a cluster: the messages that may cross, and which
addresses are placed.

``cluster/`` knows nothing of the domain (it stands on ``runtime`` alone), so the composition root
tells it two things here:

* :func:`message_types`: every message dataclass and enum of ``actors/`` (the per-feature
  ``messages`` modules, the gateway's ``inbound`` messages, principals, the reply types, the
  actors' own timer messages, the media plane's events), registered in one
  :class:`~cluster.codec.MessageTypes`. ``tests/cluster/test_message_types.py`` walks every
  ``@handles`` type of every actor class and every reply type and checks each is here and
  round-trips, so a new message cannot be forgotten;
* :func:`placed` and :func:`located`: which addresses live on exactly one node of the cluster
  (areas, rooms, calls, the group/consult/meeting actors' per-entity addresses), which name their
  node (a connection's ``conn/<node>-<n>``), and which are per node (the hosts, the directory,
  the sign-in desk: each node runs its own).
"""

from __future__ import annotations

from types import ModuleType

import actors.admin.outbox
import actors.admin.reports
import actors.admin.retention
import actors.admin.setup_messages
import actors.calls.core
import actors.calls.media
import actors.calls.presence
import actors.calls.state
import actors.consult.desk
import actors.consult.messages
import actors.group.breakout_call
import actors.group.breakouts
import actors.group.call
import actors.group.messages
import actors.meetings.messages
import actors.meetings.policies
import actors.meetings.rooms
import actors.ondemand.estimate
import actors.ondemand.messages
import actors.ondemand.queue
import actors.staff.directory
import actors.staff.notices
import actors.staff.signin
import media.events
import storage.audit_chain
import storage.retention
from actors import inbound, messages, principal
from cluster.codec import MessageTypes

#: Modules whose every dataclass and enum is a message (or a part of one).
MESSAGE_MODULES: tuple[ModuleType, ...] = (
    messages,
    inbound,
    principal,
    actors.admin.setup_messages,
    actors.consult.messages,
    actors.group.messages,
    actors.meetings.messages,
    actors.ondemand.messages,
    actors.calls.state,
    media.events,
)

#: Messages and reply types defined beside the actor that handles them.
ACTOR_MESSAGES: tuple[type, ...] = (
    actors.admin.outbox.SendLink,
    actors.admin.outbox.SendMessage,
    actors.admin.outbox.DeliverDue,
    actors.admin.outbox.ListOutbox,
    actors.admin.reports.ListAudit,
    actors.admin.reports.VerifyAuditChain,
    actors.admin.reports.ListReportAreas,
    actors.admin.reports.ReportFor,
    actors.admin.reports.Summary,
    actors.admin.reports.ReportFigures,
    actors.admin.reports.GroupFigures,
    actors.admin.retention.SweepNow,
    actors.admin.retention._Tick,
    actors.calls.core.GraceOver,
    actors.calls.presence.ParticipantKind,
    actors.consult.desk.LinkDue,
    actors.group.breakout_call.SeatsChanged,
    actors.group.breakout_call.ModeratorsChanged,
    actors.group.breakout_call.IntoRoom,
    actors.group.breakout_call.RoomRenamed,
    actors.group.breakout_call.CloseBreakout,
    actors.group.breakout_call.RoomPeople,
    actors.group.breakout_call.HelpAsked,
    actors.group.breakouts.RoomsDue,
    actors.group.breakouts.CountdownOver,
    actors.group.call.TimeWarning,
    actors.group.call.NeverStarted,
    actors.group.call.TimeUp,
    actors.group.call.EndGroup,
    actors.meetings.policies.Emptied,
    actors.ondemand.estimate.WaitEstimate,
    actors.ondemand.queue._AlertDue,
    actors.staff.directory.SessionInfo,
    actors.staff.directory.ResolveSession,
    actors.staff.directory.SessionView,
    actors.staff.directory.DescribeSession,
    actors.staff.directory.SignOut,
    actors.staff.directory.CheckCsrf,
    actors.staff.directory.AreaSummary,
    actors.staff.directory.ListMyAreas,
    actors.staff.directory.ProbeStorage,
    actors.staff.directory._Recheck,
    actors.staff.notices.Notify,
    actors.staff.notices.ListNotices,
    actors.staff.notices.MarkNoticeRead,
    actors.staff.notices.NoticeList,
    actors.staff.signin.SignIn,
    # Reply rows of the store that pages receive as they are.
    storage.audit_chain.ChainCheck,
    storage.retention.SweepResult,
)

#: Handled messages that never leave their node, so never registered (one sent across would be
#: refused at the sender): what an actor tells itself holding a live object (a deferred reply, a
#: participant's presence), an idle timer that is a plain class, and the rows an area hands the
#: room host of its own node (``rooms`` is per node). The test of what may cross accepts exactly
#: these.
LOCAL_ONLY: frozenset[type] = frozenset(
    {
        actors.meetings.rooms.IdleOver,
        actors.calls.core.Dropped,
        actors.calls.media.OfferAnswered,
        actors.consult.desk.Delivered,
        messages.OpenRooms,
    }
)


def message_types() -> MessageTypes:
    """Every message of the domain, registered to cross between nodes."""
    types = MessageTypes()
    for module in MESSAGE_MODULES:
        types.register_module(module, exclude=LOCAL_ONLY)
    types.register(*ACTOR_MESSAGES)
    return types
