"""The actor runtime: mailboxes, references, supervisors and the registry that resolves names.

The ground floor of Waitroom. It imports Trio and the standard library only and knows nothing of
clinics, calls or the web: ``actors/``, ``gateway/`` and ``media/`` stand on it.
Import it from here: ``from runtime import Actor, ActorRef, Registry, Supervisor, ChildSpec``.
"""

from runtime.errors import (
    ActorCrashed,
    ActorError,
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    Refusal,
    RestartIntensityExceeded,
)
from runtime.kernel import (
    Actor,
    ActorRef,
    Envelope,
    Failure,
    Mailbox,
    Pending,
    Stop,
    Timer,
    handles,
)
from runtime.registry import Registry
from runtime.supervisor import ChildSpec, Restart, RestartIntensity, Strategy, Supervisor

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
    "Failure",
    "Mailbox",
    "MailboxFull",
    "Pending",
    "Refusal",
    "Registry",
    "Restart",
    "RestartIntensity",
    "RestartIntensityExceeded",
    "Stop",
    "Strategy",
    "Supervisor",
    "Timer",
    "handles",
]
