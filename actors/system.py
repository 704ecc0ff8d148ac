"""The ``system/echo`` actor: a round trip through an actor and back, for probes and benchmarks.

The load tester and ``bench/gateway.py`` measure the gateway's per-message cost with it, so it does
exactly what every routed request does (gateway -> actor ask -> reply) and nothing else.
"""

from __future__ import annotations

from actors import addresses
from actors.inbound import Inbound
from runtime.kernel import Actor, handles

#: Kept importable; the address lives in ``actors.addresses``.
ECHO_ADDRESS = addresses.ECHO


class Echo(Actor):
    #: Hundreds of benchmark clients ask at once; the mailbox must absorb one message from each.
    mailbox_size = 4096

    @handles(Inbound)
    async def _echo(self, message: Inbound) -> dict[str, object]:
        return {"data": message.body.get("data")}
