"""Actors: the runtime kernel (mailboxes, refs, supervisors, registry) and Waitroom's own actors.

Import the runtime from here: ``from actors import Actor, ActorRef, Registry, Supervisor, ChildSpec``.
"""

from actors.errors import (
    ActorCrashed,
    ActorError,
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    Refusal,
    RestartIntensityExceeded,
)
from actors.kernel import Actor, ActorRef, Envelope, Mailbox, Stop
from actors.registry import Registry
from actors.supervisor import ChildSpec, Restart, Strategy, Supervisor

__all__ = [
    "Actor",
    "ActorCrashed",
    "ActorError",
    "ActorNotFound",
    "ActorRef",
    "ActorStopped",
    "AskTimeout",
    "ChildSpec",
    "Envelope",
    "Mailbox",
    "MailboxFull",
    "Refusal",
    "Registry",
    "Restart",
    "RestartIntensityExceeded",
    "Stop",
    "Strategy",
    "Supervisor",
]
