"""Administrators' pages: the audit log (filtered, read-only) and per-area reports (table, CSV,
chart). Everything is asked of the ``admin`` actor, which answers organisation administrators only.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta

import trio
from quart import Blueprint, Response, render_template, request

from actors import addresses
from actors.admin.reports import (
    AUDIT_ACTIONS,
    ChainCheck,
    ListAudit,
    ListReportAreas,
    ReportFigures,
    ReportFor,
    VerifyAuditChain,
)
from actors.principal import Principal
from runtime import Refusal
from web import security

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

#: The filter's choices are the admin actor's AUDIT_ACTIONS; any other name that looks like an
#: action can still be typed into the URL.
_ACTION = re.compile(r"^[a-z_.]{1,40}$")
#: A report covers the last 30 days unless the form says otherwise.
DEFAULT_REPORT_DAYS = 30
#: Chart size in inches at 100 dpi: small, next to the table.
CHART_SIZE = (6.0, 2.6)
CHART_DPI = 100
SECONDS_PER_MINUTE = 60


async def _ask(message: object) -> object:
    try:
        return await security.ask(addresses.ADMIN, message)
    except Refusal as refusal:
        if refusal.code == "not_found":
            raise security.WebError(404, "Page not found", refusal.detail) from refusal
        raise security.WebError(
            403, "Not allowed", "Only administrators can see this page."
        ) from refusal


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def _start_of(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(0), UTC)


@blueprint.get("/audit")
async def audit_page() -> str:
    principal = await security.require_staff()
    args = request.args
    action = args.get("action", "")
    since_day, until_day = _day(args.get("since", "")), _day(args.get("until", ""))
    entries = await _ask(
        ListAudit(
            principal,
            action=action if _ACTION.match(action) else None,
            area_id=_int(args.get("area", "")),
            user_id=_int(args.get("user", "")),
            since=_start_of(since_day),
            # "until" is a whole day, inclusive on the page, exclusive in storage.
            until=_start_of(until_day + timedelta(days=1)) if until_day else None,
        )
    )
    return await render_template(
        "admin/audit.html", entries=entries, actions=AUDIT_ACTIONS, args=args
    )


@blueprint.post("/audit/verify")
async def verify_audit_chain() -> str:
    """Recompute the hash chain of the whole log and say whether it holds (issue 15)."""
    principal = await security.require_staff()
    check = await _ask(VerifyAuditChain(principal))
    assert isinstance(check, ChainCheck)
    return await render_template("admin/audit_verified.html", check=check)


async def _report(principal: Principal) -> tuple[ReportFigures | None, list[tuple[int, str]]]:
    areas = await _ask(ListReportAreas(principal))
    assert isinstance(areas, list)
    area_id = _int(request.args.get("area", ""))
    if area_id is None:
        return None, areas
    until_day = _day(request.args.get("until", "")) or datetime.now(UTC).date()
    since_day = _day(request.args.get("since", "")) or until_day - timedelta(
        days=DEFAULT_REPORT_DAYS
    )
    since = datetime.combine(since_day, time(0), UTC)
    until = datetime.combine(until_day + timedelta(days=1), time(0), UTC)
    figures = await _ask(ReportFor(principal, area_id, since, until))
    assert isinstance(figures, ReportFigures)
    return figures, areas


def minutes(seconds: float | None) -> str:
    """Seconds as minutes with one decimal, "" for none (the table and the CSV)."""
    return "" if seconds is None else f"{seconds / SECONDS_PER_MINUTE:.1f}"


@blueprint.get("/reports")
async def reports_page() -> str:
    principal = await security.require_staff()
    figures, areas = await _report(principal)
    return await render_template(
        "admin/reports.html",
        figures=figures,
        areas=areas,
        args=request.args,
        minutes=minutes,
        kind_names=KIND_NAMES,
    )


#: How the report names each kind of call (issue 13: the organisation's calls by kind).
KIND_NAMES = {
    "caller": "waiting area",
    "meeting": "meeting room",
    "user": "user room",
    "consult_now": "Consult Now",
    "group": "group",
    "ondemand": "on-demand",
}


def report_rows(figures: ReportFigures) -> list[tuple[str, str]]:
    """(measure, value) rows shared by the CSV download and the tests."""
    return [
        ("area", figures.area_name),
        ("from (UTC)", figures.since.isoformat()),
        ("until (UTC, exclusive)", figures.until.isoformat()),
        ("arrivals", str(figures.arrivals)),
        ("transfers in", str(figures.transfers_in)),
        ("calls", str(figures.calls)),
        ("left before being seen", str(figures.left_before_seen)),
        ("wait median (min)", minutes(figures.wait.median)),
        ("wait 90th percentile (min)", minutes(figures.wait.p90)),
        ("wait longest (min)", minutes(figures.wait.longest)),
        ("call duration median (min)", minutes(figures.call_duration.median)),
        ("call duration longest (min)", minutes(figures.call_duration.longest)),
        *(
            (f"{KIND_NAMES.get(kind, kind)} calls (organisation)", str(n))
            for kind, n in figures.calls_by_kind
        ),
        *(
            ()
            if figures.group is None
            else (
                ("group sessions (organisation)", str(figures.group.sessions)),
                ("group participants (organisation)", str(figures.group.participants)),
                ("group session median (min)", minutes(figures.group.session_duration.median)),
                ("group session longest (min)", minutes(figures.group.session_duration.longest)),
                (
                    "group participant time median (min)",
                    minutes(figures.group.participant_duration.median),
                ),
            )
        ),
    ]


@blueprint.get("/reports.csv")
async def reports_csv() -> Response:
    principal = await security.require_staff()
    figures, _areas = await _report(principal)
    if figures is None:
        raise security.WebError(404, "Page not found", "Choose a waiting area first.")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("measure", "value"))
    writer.writerows(report_rows(figures))
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="report-area-{figures.area_id}.csv"'
        },
    )


def wait_chart(figures: ReportFigures) -> bytes:
    """A small histogram of waits in minutes (blocking: run in a worker thread)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=CHART_SIZE, dpi=CHART_DPI)
    axes = figure.add_subplot()
    waits = [w / SECONDS_PER_MINUTE for w in figures.waits]
    if waits:
        axes.hist(waits, bins=min(20, max(5, len(waits))), color="#1f5f8b")
    axes.set_xlabel("Wait before being seen (minutes)")
    axes.set_ylabel("Callers")
    axes.set_title(f"{figures.area_name}: {len(waits)} callers seen", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@blueprint.get("/reports.png")
async def reports_png() -> Response:
    principal = await security.require_staff()
    figures, _areas = await _report(principal)
    if figures is None:
        raise security.WebError(404, "Page not found", "Choose a waiting area first.")
    return Response(await trio.to_thread.run_sync(wait_chart, figures), mimetype="image/png")
