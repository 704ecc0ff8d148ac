"""A crashing actor's log line names the message's type, never its contents (issue 15).

Sign-in passwords, link secrets and patient details travel in messages; the journal must not get them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
import trio

from runtime import Actor, ActorCrashed, ChildSpec, Registry, Supervisor

PASSWORD = "hunter2-correct-horse"
SECRET = "s3cr3t-link-token-9f8e7d"
PATIENT = "Marta Kowalczyk"


@dataclass(frozen=True)
class SignIn:
    email: str
    password: str


@dataclass(frozen=True)
class Arrive:
    secret: str
    name: str


class Fragile(Actor):
    """Crashes on every message, with the message's contents in the exception's text as well."""

    async def handle(self, message: object) -> object:
        raise RuntimeError(f"cannot handle {message!r}")


@pytest.mark.parametrize(
    "message",
    [SignIn("a@example.org", PASSWORD), Arrive(SECRET, PATIENT)],
    ids=["password", "secret-and-patient"],
)
async def test_crash_log_never_shows_message_contents(
    message: object, caplog: pytest.LogCaptureFixture
) -> None:
    async with trio.open_nursery() as nursery:
        sup = Supervisor(Registry(), "test")
        await nursery.start(sup.run)
        ref = await sup.start_child(ChildSpec("fragile/a", Fragile))
        with caplog.at_level(logging.ERROR), pytest.raises(ActorCrashed):
            await ref.ask(message)
        nursery.cancel_scope.cancel()
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "fragile/a" in text
    assert type(message).__name__ in text
    assert "RuntimeError" in text  # the exception's type and traceback stay
    assert "Traceback" in text
    for leaked in (PASSWORD, SECRET, PATIENT):
        assert leaked not in text
