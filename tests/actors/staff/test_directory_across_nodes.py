"""Staff sockets on another node (issue 18): each node's Directory knows the sockets of its own
node only, so a sign-out or a change of rights heard on node a closes the sockets on node b at
once (not at the next recheck, which only looks at the session's times).

Linked registries stand for the nodes (``tests/actors/linked_nodes.py``), one store for the
shared database; the recheck is set far off so that only the relayed message can close.
"""

from __future__ import annotations

from pathlib import Path

import trio

from actors import addresses
from actors.inbound import CloseConnection
from actors.messages import GrantsChanged, StaffConnected
from actors.staff.directory import (
    CLOSE_RIGHTS_CHANGED,
    CLOSE_SESSION_ENDED,
    Directory,
    ResolveSession,
    SessionInfo,
    SignOut,
)
from actors.staff.signin import SignIn, SignInDesk
from runtime import Actor, ChildSpec, Supervisor, handles
from services.passwords import Passwords
from storage import areas, orgs, staff
from storage.db import open_store
from tests.actors.linked_nodes import Linked

PASSWORD = "correct horse battery staple"
FAR_OFF = 3600.0


class Socket(Actor):
    """A staff connection's stand-in: records how it was told to close."""

    def __init__(self, closed: list[int]) -> None:
        super().__init__()
        self.closed = closed

    @handles(CloseConnection)
    async def _close(self, message: CloseConnection) -> None:
        self.closed.append(message.code)


async def test_sign_out_and_a_lost_role_on_node_a_close_the_sockets_on_node_b(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    passwords = Passwords.fast_for_tests()
    async with open_store(tmp_path / "dir.sqlite3") as store:
        org = await orgs.create_organisation(store, "Org")
        unit = await orgs.create_unit(store, org.id, "Clinic")
        area = await areas.create_area(store, unit.id, "Front desk")
        user = await staff.create_user(store, "dana", "Dr Dana", await passwords.hash(PASSWORD))
        await staff.grant_role(store, user.id, "provider", "area", area.id)
        links = Linked()
        roots: dict[str, Supervisor] = {}
        for node in ("a", "b"):
            roots[node] = await nursery.start(Supervisor(links.node(node), f"root-{node}").run)
            await roots[node].start_child(
                ChildSpec(addresses.DIRECTORY, lambda: Directory(store, recheck_interval=FAR_OFF))
            )
        await roots["a"].start_child(
            ChildSpec(addresses.SIGN_IN, lambda: SignInDesk(store, passwords))
        )
        a = links.registries["a"].ref(addresses.DIRECTORY)
        b = links.registries["b"].ref(addresses.DIRECTORY)
        sign_in = links.registries["a"].ref(addresses.SIGN_IN)

        async def socket_on_b(name: str) -> tuple[list[int], str]:
            info: SessionInfo = await sign_in.ask(SignIn("dana", PASSWORD, "192.0.2.1"))
            closed: list[int] = []
            await roots["b"].start_child(ChildSpec(name, lambda: Socket(closed)))
            principal = await b.ask(ResolveSession(info.session_id))
            b.tell(StaffConnected(name, info.session_id, principal))
            return closed, info.session_id

        signed_out, session_id = await socket_on_b("conn/b-1")
        lost_role, _ = await socket_on_b("conn/b-2")
        await a.ask(SignOut(session_id))
        with trio.fail_after(2):
            while not signed_out:  # noqa: ASYNC110 (the socket has no event to wait on)
                await trio.sleep(0.01)
        assert signed_out == [CLOSE_SESSION_ENDED] and lost_role == []

        await staff.revoke_role(store, user.id, "provider", "area", area.id)
        a.tell(GrantsChanged(str(user.id)))
        with trio.fail_after(2):
            while not lost_role:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert lost_role == [CLOSE_RIGHTS_CHANGED]
        nursery.cancel_scope.cancel()
