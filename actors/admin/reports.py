"""``admin``: read-only questions administrators ask: the audit log and the per-area reports.

Only organisation administrators get answers, and only about their own organisation's areas. Nothing
here writes: the audit log is append-only and the admin pages only read it. Report statistics
(median, 90th percentile, longest) are computed here from storage's raw figures.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime

from actors import addresses, refusals
from actors.principal import Principal, Role
from runtime.errors import Refusal
from runtime.kernel import Actor, handles
from storage import areas as area_store
from storage import audit, audit_chain, group_sessions, ondemand, orgs, reports
from storage.audit import AuditEntry

# Re-exported for pages, which never import storage.
from storage.audit_chain import ChainCheck as ChainCheck
from storage.db import Store

#: Kept importable; the address lives in ``actors.addresses``.
ADMIN_ADDRESS = addresses.ADMIN
#: The audited actions (the one vocabulary, kept with the audit log in storage), for pages that
#: filter the log: they take it from here, never from storage.
AUDIT_ACTIONS: tuple[str, ...] = audit.ACTIONS
#: The usage report's name for on-demand sessions among the calls by kind (issue 14).
ONDEMAND_KIND = "ondemand"
#: The percentile the reports show next to the median: "most callers waited less than this".
PERCENTILE = 90


@dataclass(frozen=True)
class ListAudit:
    principal: Principal
    action: str | None = None
    area_id: int | None = None
    user_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = audit.DEFAULT_PAGE


@dataclass(frozen=True)
class VerifyAuditChain:
    """Recompute the audit log's hash chain (administrators only): intact, or where it breaks."""

    principal: Principal


@dataclass(frozen=True)
class ListReportAreas:
    """The waiting areas of the administrator's organisation: (id, name), for the report form."""

    principal: Principal


@dataclass(frozen=True)
class ReportFor:
    principal: Principal
    area_id: int
    since: datetime
    until: datetime


@dataclass(frozen=True)
class Summary:
    """Median, 90th percentile and longest of a list of seconds (None when there are none)."""

    count: int
    median: float | None
    p90: float | None
    longest: float | None


@dataclass(frozen=True)
class ReportFigures:
    area_id: int
    area_name: str
    since: datetime
    until: datetime
    arrivals: int
    transfers_in: int
    calls: int
    left_before_seen: int
    wait: Summary
    call_duration: Summary
    #: Seconds each seen caller waited, in order of arrival (for the chart).
    waits: tuple[float, ...]
    #: The organisation's calls in the period by kind (``storage.reports.CALL_KINDS``, issue 13).
    calls_by_kind: tuple[tuple[str, int], ...] = ()
    #: The organisation's group sessions that started in the period (issue 12).
    group: GroupFigures | None = None


@dataclass(frozen=True)
class GroupFigures:
    """Group sessions of the organisation in the period: how many, how many participants (each
    admitted person once per session), how long the sessions ran and each participant was in."""

    sessions: int
    participants: int
    session_duration: Summary
    participant_duration: Summary


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``pct`` % of values at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summarise(values: list[float]) -> Summary:
    if not values:
        return Summary(0, None, None, None)
    return Summary(
        len(values), statistics.median(values), percentile(values, PERCENTILE), max(values)
    )


def _org_of(entry: AuditEntry) -> str | None:
    """The organisation an entry without an area names (on-demand entries, issue 14), if any."""
    org = entry.details.get("org")
    return None if org is None else str(org)


def _is_org_admin(principal: Principal) -> bool:
    return principal.is_staff and any(
        g.role is Role.ORG_ADMIN and g.scope_id == principal.org_id for g in principal.grants
    )


def _require_org_admin(principal: Principal) -> None:
    if not _is_org_admin(principal):
        raise Refusal(refusals.FORBIDDEN, "only administrators see this")


class AdminActor(Actor):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    @handles(ListAudit)
    async def _on_list_audit(self, message: ListAudit) -> object:
        _require_org_admin(message.principal)
        return await self._audit(message)

    @handles(VerifyAuditChain)
    async def _on_verify_chain(self, message: VerifyAuditChain) -> ChainCheck:
        _require_org_admin(message.principal)
        return await audit_chain.verify(self.store)

    @handles(ListReportAreas)
    async def _on_report_areas(self, message: ListReportAreas) -> list[tuple[int, str]]:
        _require_org_admin(message.principal)
        return [(a.id, a.name) for a in await self._org_areas(message.principal)]

    @handles(ReportFor)
    async def _on_report(self, message: ReportFor) -> object:
        _require_org_admin(message.principal)
        return await self._report(message)

    async def _org_areas(self, principal: Principal) -> list[area_store.WaitingArea]:
        org_id = int(principal.org_id or 0)
        units = {u.id for u in await orgs.list_units(self.store, org_id)}
        return [
            a
            for a in await area_store.list_areas(self.store, include_inactive=True)
            if a.unit_id in units
        ]

    async def _audit(self, msg: ListAudit) -> list[AuditEntry]:
        """Only rows of the administrator's own organisation's areas: another organisation's area
        answers empty, exactly like an id that does not exist."""
        own = {a.id for a in await self._org_areas(msg.principal)}
        if msg.area_id is not None and msg.area_id not in own:
            return []
        entries = await audit.list_entries(
            self.store,
            action=msg.action,
            area_id=msg.area_id,
            user_id=msg.user_id,
            since=msg.since,
            until=msg.until,
            limit=msg.limit,
        )
        org = msg.principal.org_id
        return [
            e
            for e in entries
            if (e.area_id is None and _org_of(e) in (None, org)) or e.area_id in own
        ]

    async def _group_figures(self, org_id: int, since: datetime, until: datetime) -> GroupFigures:
        usage = await group_sessions.usage(self.store, org_id, since, until)
        return GroupFigures(
            usage.sessions,
            usage.participants,
            summarise(list(usage.session_seconds)),
            summarise(list(usage.participant_seconds)),
        )

    async def _report(self, msg: ReportFor) -> ReportFigures:
        areas = {a.id: a for a in await self._org_areas(msg.principal)}
        area = areas.get(msg.area_id)
        if area is None:
            raise Refusal(refusals.NOT_FOUND, "no such waiting area in your organisation")
        raw = await reports.area_report(self.store, msg.area_id, msg.since, msg.until)
        return ReportFigures(
            area_id=area.id,
            area_name=area.name,
            since=msg.since,
            until=msg.until,
            arrivals=raw.arrivals,
            transfers_in=raw.transfers_in,
            calls=raw.call_count,
            left_before_seen=raw.left_before_seen,
            wait=summarise(raw.wait_seconds),
            call_duration=summarise(raw.call_durations),
            waits=tuple(raw.wait_seconds),
            calls_by_kind=(
                *(
                    await reports.calls_by_kind(
                        self.store, int(msg.principal.org_id or 0), msg.since, msg.until
                    )
                ).items(),
                # On-demand sessions started (issue 14): they have no room row of their own.
                (
                    ONDEMAND_KIND,
                    await ondemand.sessions_between(
                        self.store, int(msg.principal.org_id or 0), msg.since, msg.until
                    ),
                ),
            ),
            group=await self._group_figures(int(msg.principal.org_id or 0), msg.since, msg.until),
        )
