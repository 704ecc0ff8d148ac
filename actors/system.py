"""The ``system/echo`` actor: a round trip through an actor and back, for probes and benchmarks.

The load tester and ``bench/gateway.py`` measure the gateway's per-message cost with it, so it does
exactly what every routed request does (gateway -> actor ask -> reply) and nothing else.
"""

from __future__ import annotations

from actors.inbound import Inbound
from runtime.kernel import Actor

ECHO_ADDRESS = "system/echo"


class Echo(Actor):
    #: Hundreds of benchmark clients ask at once; the mailbox must absorb one message from each.
    mailbox_size = 4096

    async def handle(self, message: object) -> object:
        if type(message) is Inbound:
            return {"data": message.body.get("data")}
        return await super().handle(message)
