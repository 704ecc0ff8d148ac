"""The states a call goes through, and which moves between them are allowed.

One enum for every kind of call, so pages, the area's list and the logs speak of the same four
states. The call actor changes its state in one setter only (``Call.set_state``), which checks the
move against :func:`check_move` and logs ``old -> new``: a state is never assigned by hand.
"""

from __future__ import annotations

import enum


class CallState(enum.StrEnum):
    """The value is what ``room.state`` shows on the wire."""

    #: Open, nobody from the team in it yet (the caller waits; a meeting room waits for its people).
    WAITING = "waiting"
    #: Running: media flows between everyone present.
    IN_CALL = "in_call"
    #: Paused by the team: the people the call is held for stay and wait, everyone else leaves, and
    #: no media passes.
    ON_HOLD = "on_hold"
    #: Over: nobody may enter again, every connection is closed, the actor stops. Final.
    ENDED = "ended"


class InvalidMove(Exception):
    """A state change that must not happen (a bug: handlers refuse such events before)."""


def check_move(old: CallState, new: CallState) -> None:
    """Raise :class:`InvalidMove` for a move out of ``ENDED``; every other move is allowed.

    The events that lead to a state (a provider joining, a hold, a transfer) are checked by the
    kind of call that receives them; the core only guards what holds for every kind: an ended call
    stays ended, whatever arrives after it.
    """
    if old is CallState.ENDED and new is not CallState.ENDED:
        raise InvalidMove(f"a call that has ended cannot become {new.value}")
