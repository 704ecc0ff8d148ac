"""axe-core's WCAG 2.1 A and AA rules on a live page (axe-playwright-python), for browser tests.

The issue's bar (issue 13): every page passes these rules at a desktop and a phone size. Each
browser test calls :func:`assert_accessible` on the pages it shows, in each state worth checking
(a dialog open, a call running, an ended call), at :data:`DESKTOP` and :data:`PHONE`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from axe_playwright_python.sync_playwright import Axe

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: axe-core's tags for the WCAG 2.0 and 2.1 success criteria at levels A and AA.
WCAG_21_A_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

_axe = Axe()


def violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations of the WCAG 2.1 A/AA rules on the page as it is now."""
    options = {
        "runOnly": {"type": "tag", "values": list(WCAG_21_A_AA)},
        "resultTypes": ["violations"],
    }
    found: list[dict[str, Any]] = _axe.run(page, options=options).response["violations"]
    return found


def assert_accessible(page: Page, what: str) -> None:
    """No WCAG 2.1 A/AA violation on ``page``; the message names each rule and its elements."""
    found = violations(page)
    report = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in found
    ]
    assert not found, f"{what}: " + "; ".join(report)


def assert_accessible_at_both_sizes(page: Page, what: str) -> None:
    """The check at the desktop and the phone size; the page is left at its original size."""
    before = page.viewport_size
    try:
        for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(size)
            assert_accessible(page, f"{what} at {name} size")
    finally:
        if before is not None:
            page.set_viewport_size(before)
