"""``admin/retention``: carries out the retention policy, so personal data does not pile up.

Nothing else in Waitroom deletes: callers' details, call participants' names, outbox messages,
ended sessions and the client addresses in audit entries would otherwise be kept for ever
(issue 15). This actor sweeps once shortly after
start and then every :data:`SWEEP_INTERVAL` seconds; each sweep is one transaction of a few
UPDATE/DELETE statements (``storage.retention``) and, when it changed anything, one audit entry
saying how many rows of each kind it forgot (never which). The policy's days are configured per
kind of data (``waitroom serve --retain-*-days``; docs/operations.md gives the defaults and why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from runtime.kernel import Actor, handles
from storage import audit
from storage.db import Store
from storage.retention import RetentionPolicy, SweepResult, sweep
from storage.times import utcnow

log = logging.getLogger(__name__)

#: Seconds between sweeps: data is forgotten within the hour after its day comes.
SWEEP_INTERVAL = 3600.0
#: The first sweep waits this long after start, so a starting server does its own work first.
FIRST_SWEEP_DELAY = 60.0


@dataclass(frozen=True)
class SweepNow:
    """Run a sweep now, besides the timer's (for operators' tools and tests); answers the result."""


@dataclass(frozen=True)
class _Tick:
    """The timer's sweep, which also sets the next one."""


class RetentionActor(Actor):
    """Runs :func:`storage.retention.sweep` on a timer; keeps only the last result in memory."""

    def __init__(
        self,
        store: Store,
        policy: RetentionPolicy | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        interval: float = SWEEP_INTERVAL,
        first_delay: float = FIRST_SWEEP_DELAY,
    ) -> None:
        super().__init__()
        self.store = store
        self.policy = policy if policy is not None else RetentionPolicy()
        self.clock = clock
        self.interval = interval
        self.first_delay = first_delay
        self.last: SweepResult | None = None

    async def on_start(self) -> None:
        self.send_after(self.first_delay, _Tick())

    @handles(_Tick)
    async def _on_tick(self, message: _Tick) -> None:
        try:
            await self._sweep_now(SweepNow())
        finally:
            self.send_after(self.interval, _Tick())

    @handles(SweepNow)
    async def _sweep_now(self, message: SweepNow) -> SweepResult:
        now = self.clock()
        result = await sweep(self.store, self.policy, now)
        if result.total:
            await audit.append(
                self.store,
                audit.RETENTION_SWEEP,
                actor_kind="system",
                details=_audit_details(self.policy, result),
                now=now,
            )
            log.info("retention: forgot %s", asdict(result))
        self.last = result
        return result


def _audit_details(policy: RetentionPolicy, result: SweepResult) -> dict[str, dict[str, int]]:
    """What the sweep's audit entry says: the days and how many rows of each kind were forgotten.

    Named without "session" or "token", which the audit log refuses as credential-like keys."""
    return {
        "days": {
            "caller_details": policy.caller_days,
            "outbox": policy.outbox_days,
            "ended_sign_ins_and_links": policy.session_days,
            "audit_addresses": policy.audit_address_days,
        },
        "forgot": {
            "caller_details": result.callers_anonymised,
            "participant_names": result.participants_anonymised,
            "outbox_messages": result.outbox_emptied,
            "ended_sign_ins": result.sessions_deleted,
            "spent_links": result.tokens_deleted,
            "ondemand_requests": result.ondemand_anonymised,
            "staff_bell_items": result.notices_deleted,
            "group_names": result.group_anonymised,
            "audit_addresses": result.audit_addresses_forgotten,
        },
    }
