"""Invitation links into calls that are not running: refused after the work a live call does.

An invite link is ``/i/<room id>.<secret>``. The page asks the room's own actor, which checks the
secret against storage (:func:`actors.calls.invites.check_invitation`). A room that is not running
has no actor, and the page used to answer at once, a database read sooner than a live room
answers a wrong secret: timing those two told which calls were going on, whatever the pages said
(issue 15). The page asks this desk instead; it does the same check (hash, read, compare) and the
same refusal, for landing pages and claims alike. It holds no state, so a restart loses nothing.
"""

from __future__ import annotations

from actors.calls import invites
from actors.messages import CheckInvite, ClaimInvite
from runtime.kernel import Actor, handles
from storage.db import Store


class InviteDesk(Actor):
    """Answers invitations into rooms that are not running: always refused, never sooner."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    @handles(CheckInvite)
    async def _check(self, msg: CheckInvite) -> None:
        await invites.refuse_after_checking(self.store, msg.secret)

    @handles(ClaimInvite)
    async def _claim(self, msg: ClaimInvite) -> None:
        await invites.refuse_after_checking(self.store, msg.secret)
