"""The usage report's group rows (issue 12): the CSV and the page name sessions, participants and
their minutes when the report has group figures, and nothing of groups when it has none."""

from __future__ import annotations

from datetime import UTC, datetime

from actors.admin.reports import GroupFigures, ReportFigures, summarise
from web.admin import report_rows


def figures(group: GroupFigures | None) -> ReportFigures:
    day = datetime(2026, 3, 2, tzinfo=UTC)
    empty = summarise([])
    return ReportFigures(1, "Physio", day, day, 0, 0, 0, 0, empty, empty, (), (), group)


def test_group_rows_are_in_the_report_only_with_group_figures() -> None:
    group = GroupFigures(2, 7, summarise([3600.0, 5400.0]), summarise([600.0, 1200.0, 1800.0]))
    rows = dict(report_rows(figures(group)))
    assert rows["group sessions (organisation)"] == "2"
    assert rows["group participants (organisation)"] == "7"
    assert rows["group session longest (min)"] == "90.0"
    assert rows["group participant time median (min)"] == "20.0"
    assert not any(key.startswith("group") for key, _ in report_rows(figures(None)))
