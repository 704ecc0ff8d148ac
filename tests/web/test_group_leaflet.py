"""The group session's leaflet: the shared header band (web.leaflet.start_leaflet), the session's
title and start in the reader's language, and a QR code that opens the session's link."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.web.test_leaflet import inspect_pdf
from web.group_leaflet import GroupLeaflet, render_group_leaflet

LINK = "https://clinic.example/g/Zq0wK3J9abcdefghij"


@pytest.mark.parametrize(
    ("lang", "heading"), [("en", "Group video session"), ("uk", "Групова відеосесія")]
)
def test_group_leaflet_has_its_heading_title_and_a_qr_code_of_the_link(
    tmp_path: Path, lang: str, heading: str
) -> None:
    content = GroupLeaflet(
        service_name="Demo Clinic",
        title="Knee class",
        unit_name="Physiotherapy",
        link=LINK,
        starts_at=datetime(2030, 1, 7, 9, 30, tzinfo=UTC),
        time_zone="Europe/Kyiv",
        locale=lang,
    )
    pdf = tmp_path / f"group-{lang}.pdf"
    pdf.write_bytes(render_group_leaflet(content))
    text, fonts, payloads = inspect_pdf(pdf)
    assert "DEMO CLINIC" in text
    assert heading in text
    assert "Knee class · Physiotherapy" in text
    assert "11:30" in text  # 09:30 UTC on the session's own clock
    assert payloads == [LINK]
    assert "DejaVuSans" in fonts
