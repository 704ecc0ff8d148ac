"""Typed errors of the actor runtime.

Senders see these instead of silent drops or hangs: a full mailbox, an address nobody owns, a reply
that did not come in time, an actor that crashed while handling the sender's message. ``Refusal`` is
the one error a handler raises on purpose: an expected "no" that is returned to the asker while the
actor keeps running (let it crash is for everything else).
"""

from __future__ import annotations

#: The one refusal code the runtime itself gives: an actor has no handler for a message's type.
UNKNOWN_MESSAGE = "unknown_message"


class ActorError(Exception):
    """Base of every runtime error a sender can see."""


class MailboxFull(ActorError):
    """The addressed actor's bounded mailbox has no room; the message was not queued."""

    def __init__(self, address: str, capacity: int) -> None:
        super().__init__(f"mailbox of {address} is full ({capacity} messages)")
        self.address = address
        self.capacity = capacity


class ActorNotFound(ActorError):
    """No actor is registered under this address (never started, or stopped)."""

    def __init__(self, address: str) -> None:
        super().__init__(f"no actor at {address}")
        self.address = address


class AskTimeout(ActorError):
    """The actor did not reply within the asker's timeout; the message may still be handled."""

    def __init__(self, address: str, timeout: float) -> None:
        super().__init__(f"{address} did not reply within {timeout:g}s")
        self.address = address
        self.timeout = timeout


class ActorCrashed(ActorError):
    """The actor raised an unexpected exception while handling this message and was restarted."""

    def __init__(self, address: str, message: object) -> None:
        super().__init__(f"{address} crashed handling {type(message).__name__}")
        self.address = address


class ActorStopped(ActorError):
    """The actor stopped before it handled this message."""

    def __init__(self, address: str) -> None:
        super().__init__(f"{address} stopped before replying")
        self.address = address


class RestartIntensityExceeded(ActorError):
    """A supervisor saw more restarts than its intensity allows and fails upward."""

    def __init__(self, supervisor: str, restarts: int, period: float) -> None:
        super().__init__(f"supervisor {supervisor}: more than {restarts} restarts in {period:g}s")
        self.supervisor = supervisor


class Refusal(ActorError):
    """An expected refusal: returned to the asker as an error with a stable code; no crash.

    ``code`` is a short machine-readable string (``forbidden``, ``not_found``, ``closed`` ...) that
    the gateway puts on the wire unchanged; ``detail`` is a sentence a person can read.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
