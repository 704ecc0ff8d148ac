"""The Caller Information Leaflet: one printable A4 PDF per waiting area, in the caller's language.

Clinics hand it out or post it: the service's name, the link and a QR code for it, the opening hours
on the area's clock, and plain joining instructions. Built with fpdf2 (DejaVu Sans, so Cyrillic and
accents render) and segno for the QR code; rendering runs in a worker thread so a page never stalls
the Trio loop.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from pathlib import Path

import segno
import trio
from babel import dates
from fpdf import FPDF
from quart import Blueprint, Response, current_app, request

from actors.messages import AreaLeaflet, DescribeForLeaflet
from actors.waiting.areas import area_address
from runtime import Refusal
from runtime.errors import ActorNotFound
from web import i18n, security

#: Debian's fonts-dejavu-core (``./manage`` installs it): the glyphs for Ukrainian and more.
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_FAMILY = "DejaVu"
#: The brand colour of the pages (``base.css``), as RGB.
ACCENT = (31, 95, 139)
ACCENT_LIGHT = (232, 241, 247)
INK = (33, 37, 41)
MUTED = (90, 98, 106)
#: Page geometry in millimetres (A4 portrait).
MARGIN = 18.0
PAGE_WIDTH = 210.0
BAND_HEIGHT = 42.0
QR_SIZE = 62.0
#: The link's type size range (points): as large as fits one line, never unreadably small.
LINK_FONT_MAX = 14.0
LINK_FONT_MIN = 7.0
#: Modules per QR pixel in the embedded PNG: crisp when printed, small in the file.
QR_SCALE = 10
QR_BORDER = 4

blueprint = Blueprint("leaflet", __name__)


@dataclass(frozen=True)
class LeafletContent:
    """Everything printed: the area's facts and the language to print them in."""

    service_name: str
    area_name: str
    link: str
    time_zone: str
    opening_hours: tuple[tuple[int, str, str], ...]
    locale: str


def qr_png(link: str) -> bytes:
    """The link as a QR code PNG (error correction M survives a smudged printout)."""
    buffer = io.BytesIO()
    segno.make(link, error="m", micro=False).save(
        buffer, kind="png", scale=QR_SCALE, border=QR_BORDER
    )
    return buffer.getvalue()


def _clock(hhmm: str, locale: str) -> str:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    if hours >= 24:  # "24:00" closes at midnight, which clocks write as 00:00 (or 12:00 AM)
        hours, minutes = 0, 0
    return dates.format_time(time(hours, minutes), "short", locale=locale)


def hours_lines(
    content: LeafletContent, closed: str, all_day: str = "Open all day"
) -> list[tuple[str, str]]:
    """(weekday name, "08:00–12:00, 13:00–17:00", "Closed" or "Open all day"), Monday first."""
    locale = "en" if content.locale == i18n.PSEUDO_LOCALE else content.locale
    lines = []
    for weekday in range(7):
        spans = sorted((o, c) for d, o, c in content.opening_hours if d == weekday)
        if ("00:00", "24:00") in spans:
            lines.append((i18n.weekday_name(weekday, locale), all_day))
            continue
        text = ", ".join(f"{_clock(o, locale)}–{_clock(c, locale)}" for o, c in spans)
        lines.append((i18n.weekday_name(weekday, locale), text or closed))
    return lines


def start_leaflet(service_name: str, heading: str, subtitle: str, title: str) -> tuple[FPDF, float]:
    """An A4 page with the fonts and the header band every leaflet opens with (who it is from,
    what it is, for what); the PDF and the width between the margins."""
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_title(f"{title} · {service_name}")
    pdf.set_author(service_name)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(auto=True, margin=MARGIN)
    pdf.add_font(FONT_FAMILY, "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font(FONT_FAMILY, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    width = PAGE_WIDTH - 2 * MARGIN
    pdf.set_fill_color(*ACCENT)
    pdf.rect(0, 0, PAGE_WIDTH, BAND_HEIGHT, style="F")
    pdf.set_text_color(255, 255, 255)
    pdf.set_xy(MARGIN, 11)
    pdf.set_font(FONT_FAMILY, "", 11)
    pdf.cell(width, 6, service_name.upper(), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT_FAMILY, "B", 22)
    pdf.cell(width, 12, heading, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT_FAMILY, "", 12)
    pdf.cell(width, 7, subtitle, new_x="LMARGIN", new_y="NEXT")
    return pdf, width


def render_leaflet(content: LeafletContent) -> bytes:
    """The leaflet as PDF bytes (blocking: call it in a worker thread)."""
    _: Callable[[str], str] = i18n.translations_for(content.locale).gettext
    pdf, width = start_leaflet(
        content.service_name, _("Video consultation"), content.area_name, content.area_name
    )

    # The link and its QR code, side by side.
    top = BAND_HEIGHT + 10
    text_width = width - QR_SIZE - 8
    pdf.set_text_color(*INK)
    pdf.set_xy(MARGIN, top)
    pdf.set_font(FONT_FAMILY, "B", 14)
    pdf.multi_cell(text_width, 7, _("Join your appointment by video from home"), align="L")
    pdf.ln(2)
    pdf.set_font(FONT_FAMILY, "", 11)
    pdf.multi_cell(
        text_width,
        5.5,
        _(
            "At the time of your appointment, open this link or scan the code with your "
            "phone's camera. You do not need an account or an app."
        ),
        align="L",
    )
    qr_top = top
    pdf.image(io.BytesIO(qr_png(content.link)), x=MARGIN + width - QR_SIZE, y=qr_top, w=QR_SIZE)
    pdf.set_text_color(*MUTED)
    pdf.set_font(FONT_FAMILY, "", 9)
    pdf.set_xy(MARGIN + width - QR_SIZE, qr_top + QR_SIZE)
    pdf.multi_cell(QR_SIZE, 4.5, _("Scan with your phone's camera"), align="C")
    pdf.set_y(max(pdf.get_y(), qr_top + QR_SIZE + 10) + 2)

    # The link on one line, full width, shrunk until it fits: people type it from paper.
    size = LINK_FONT_MAX
    pdf.set_font(FONT_FAMILY, "B", size)
    while size > LINK_FONT_MIN and pdf.get_string_width(content.link) > width - 6:
        size -= 0.5
        pdf.set_font(FONT_FAMILY, "B", size)
    pdf.set_fill_color(*ACCENT_LIGHT)
    pdf.set_text_color(*ACCENT)
    pdf.multi_cell(width, 10, content.link, fill=True, align="C", link=content.link)
    pdf.ln(2)

    def heading(text: str) -> None:
        pdf.ln(3)
        pdf.set_text_color(*ACCENT)
        pdf.set_font(FONT_FAMILY, "B", 13)
        pdf.cell(width, 8, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(*ACCENT)
        pdf.set_line_width(0.4)
        pdf.line(MARGIN, pdf.get_y(), MARGIN + width, pdf.get_y())
        pdf.ln(2)
        pdf.set_text_color(*INK)
        pdf.set_font(FONT_FAMILY, "", 11)

    heading(_("How to join"))
    steps = [
        _(
            "Use a smartphone, tablet or computer with a camera, a microphone and a speaker or "
            "headphones. Use an up-to-date Chrome, Edge, Firefox or Safari."
        ),
        _("Find a quiet, private place with good light and a steady internet connection."),
        _("Open the link or scan the code, fill in your details and enter the waiting area."),
        _(
            "When your browser asks, allow the camera and the microphone. Without them the "
            "clinician cannot see or hear you."
        ),
        _(
            "While you wait, keep the page open. No one else waiting can see or hear you. "
            "Your clinician will join you when they are ready."
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

    heading(_("Opening hours"))
    for day, text in hours_lines(content, _("Closed"), _("Open all day")):
        pdf.set_font(FONT_FAMILY, "B", 11)
        pdf.cell(45, 6.5, day)
        pdf.set_font(FONT_FAMILY, "", 11)
        pdf.cell(width - 45, 6.5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*MUTED)
    pdf.set_font(FONT_FAMILY, "", 9)
    pdf.cell(
        width,
        6,
        _("Times are local time (%(zone)s).") % {"zone": content.time_zone},
        new_x="LMARGIN",
        new_y="NEXT",
    )

    pdf.ln(4)
    pdf.set_text_color(*MUTED)
    pdf.set_font(FONT_FAMILY, "", 10)
    pdf.multi_cell(
        width,
        5,
        _(
            "If you cannot connect, or the call drops, open the link again: you keep your "
            "place for a short while. If it still does not work, please phone the clinic."
        ),
        align="L",
    )
    return bytes(pdf.output())


@blueprint.get("/areas/<int:area_id>/leaflet.pdf")
async def leaflet(area_id: int) -> Response:
    """Download the leaflet (providers of the area): ``?lang=uk`` picks the language."""
    principal = await security.require_staff()
    try:
        reply = await security.ask(area_address(area_id), DescribeForLeaflet(principal))
    except Refusal as refusal:
        # The same answer as for an area that does not exist: ids are sequential (issue 15).
        raise security.WebError(
            404, "Page not found", "There is no such waiting area."
        ) from refusal
    except security.WebError as error:
        if not isinstance(error.__cause__, ActorNotFound):
            raise
        raise security.WebError(404, "Page not found", "There is no such waiting area.") from None
    if not isinstance(reply, AreaLeaflet):
        raise security.WebError(404, "Page not found", "There is no such waiting area.")
    lang = request.args.get("lang", "")
    locale = lang if lang in i18n.available_locales() else i18n.current_locale()
    from web.app import public_url

    content = LeafletContent(
        service_name=str(current_app.config.get("WAITROOM_SERVICE_NAME", "Waitroom")),
        area_name=reply.name,
        link=public_url(f"/w/{reply.slug}"),
        time_zone=reply.time_zone,
        opening_hours=reply.opening_hours,
        locale=locale,
    )
    body = await trio.to_thread.run_sync(render_leaflet, content)
    return Response(
        body,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="leaflet-{area_id}-{locale}.pdf"',
        },
    )
