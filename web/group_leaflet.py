"""The caller information leaflet of a group session: one printable A4 PDF, in the caller's language.

A waiting area's leaflet (``web.leaflet``) prints opening hours; a group session has one start
time instead, and its steps differ (register, open the link, wait to be let in by the moderator).
The look, the fonts, the QR code and the shrink-to-fit link are the waiting area leaflet's own
helpers, so both leaflets read alike. Rendering is blocking: call it in a worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel import dates

from web import i18n
from web.leaflet import (
    ACCENT,
    ACCENT_LIGHT,
    BAND_HEIGHT,
    FONT_FAMILY,
    INK,
    LINK_FONT_MAX,
    LINK_FONT_MIN,
    MARGIN,
    MUTED,
    QR_SIZE,
    qr_png,
    start_leaflet,
)


@dataclass(frozen=True)
class GroupLeaflet:
    """Everything printed on a group session's leaflet."""

    service_name: str
    title: str
    unit_name: str
    link: str
    starts_at: datetime
    time_zone: str
    locale: str


def start_text(content: GroupLeaflet) -> str:
    """The start as the caller reads it: full date and short time on the session's clock."""
    locale = "en" if content.locale == i18n.PSEUDO_LOCALE else content.locale
    local = content.starts_at.astimezone(ZoneInfo(content.time_zone))
    day = dates.format_date(local, "full", locale=locale)
    clock = dates.format_time(local, "short", locale=locale)
    return f"{day}, {clock}"


def render_group_leaflet(content: GroupLeaflet) -> bytes:
    """The leaflet as PDF bytes (blocking)."""
    _: Callable[[str], str] = i18n.translations_for(content.locale).gettext
    pdf, width = start_leaflet(
        content.service_name,
        _("Group video session"),
        f"{content.title} · {content.unit_name}",
        content.title,
    )

    top = BAND_HEIGHT + 10
    text_width = width - QR_SIZE - 8
    pdf.set_text_color(*INK)
    pdf.set_xy(MARGIN, top)
    pdf.set_font(FONT_FAMILY, "B", 14)
    pdf.multi_cell(text_width, 7, _("Starts: %(when)s") % {"when": start_text(content)}, align="L")
    pdf.set_font(FONT_FAMILY, "", 9)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(
        text_width, 5, _("Local time (%(zone)s).") % {"zone": content.time_zone}, align="L"
    )
    pdf.ln(2)
    pdf.set_text_color(*INK)
    pdf.set_font(FONT_FAMILY, "", 11)
    pdf.multi_cell(
        text_width,
        5.5,
        _(
            "A few minutes before the start, open this link or scan the code with your "
            "phone's camera. You do not need an account or an app."
        ),
        align="L",
    )
    pdf.image(io.BytesIO(qr_png(content.link)), x=MARGIN + width - QR_SIZE, y=top, w=QR_SIZE)
    pdf.set_text_color(*MUTED)
    pdf.set_font(FONT_FAMILY, "", 9)
    pdf.set_xy(MARGIN + width - QR_SIZE, top + QR_SIZE)
    pdf.multi_cell(QR_SIZE, 4.5, _("Scan with your phone's camera"), align="C")
    pdf.set_y(max(pdf.get_y(), top + QR_SIZE + 10) + 2)

    size = LINK_FONT_MAX
    pdf.set_font(FONT_FAMILY, "B", size)
    while size > LINK_FONT_MIN and pdf.get_string_width(content.link) > width - 6:
        size -= 0.5
        pdf.set_font(FONT_FAMILY, "B", size)
    pdf.set_fill_color(*ACCENT_LIGHT)
    pdf.set_text_color(*ACCENT)
    pdf.multi_cell(width, 10, content.link, fill=True, align="C", link=content.link)
    pdf.ln(4)

    pdf.set_text_color(*ACCENT)
    pdf.set_font(FONT_FAMILY, "B", 13)
    pdf.cell(width, 8, _("How to join"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(*ACCENT)
    pdf.set_line_width(0.4)
    pdf.line(MARGIN, pdf.get_y(), MARGIN + width, pdf.get_y())
    pdf.ln(2)
    steps = [
        _(
            "Use a smartphone, tablet or computer with a camera, a microphone and a speaker or "
            "headphones. Use an up-to-date Chrome, Edge, Firefox or Safari."
        ),
        _("Find a quiet, private place with good light and a steady internet connection."),
        _("Open the link or scan the code and give your name."),
        _(
            "You wait in the group waiting area. Nobody else waiting can see or hear you. The "
            "moderator lets everyone in when the session starts."
        ),
        _(
            "When your browser asks, allow the camera and the microphone. In the session you "
            "can raise your hand, and chat with everyone or privately with the moderator."
        ),
    ]
    for number, step in enumerate(steps, start=1):
        pdf.set_font(FONT_FAMILY, "B", 11)
        pdf.set_text_color(*ACCENT)
        pdf.cell(8, 5.5, f"{number}.")
        pdf.set_font(FONT_FAMILY, "", 11)
        pdf.set_text_color(*INK)
        pdf.multi_cell(width - 8, 5.5, step, new_x="LMARGIN", new_y="NEXT", align="L")
        pdf.ln(1.5)
    pdf.ln(3)
    pdf.set_text_color(*MUTED)
    pdf.set_font(FONT_FAMILY, "", 10)
    pdf.multi_cell(
        width,
        5,
        _(
            "If you cannot connect, or the call drops, open the link again in the same "
            "window. If it still does not work, please phone the clinic."
        ),
        align="L",
    )
    return bytes(pdf.output())
