"""How every browser test starts Debian's Chromium: one place for the path and the flags.

Headless as root needs ``--no-sandbox``; the fake devices give each page a test-pattern camera and
a beeping microphone without a permission prompt; ``--allow-loopback-in-peer-connection`` lets
WebRTC use 127.0.0.1 on a loopback-only network. Chrome keeps only the last ``--disable-features``,
so any such list must be merged here rather than added by a caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
)


def launch(playwright: Playwright, camera_fps: int | None = None) -> Browser:
    """A headless browser; callers open one context per person (separate cookies and storage).

    ``camera_fps`` slows the fake camera (Chromium's own is 20 frames a second): a test that runs
    many publishing pages in one browser lowers its encoding cost so a 2-core machine keeps up.
    """
    args = list(CHROMIUM_ARGS)
    if camera_fps is not None:
        fake = args.index("--use-fake-device-for-media-stream")
        args[fake] = f"--use-fake-device-for-media-stream=fps={camera_fps}"
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


def launch_persistent(
    playwright: Playwright, profile: Path, extra_args: tuple[str, ...] = (), **options: Any
) -> BrowserContext:
    """A headless browser with one context on the profile directory ``profile``.

    ``--user-data-dir`` cannot go in the flags; Playwright takes the directory here instead.
    ``extra_args`` are more flags; ``options`` are passed on (``locale=...``, ``permissions=...``).
    """
    return playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_ARGS, *extra_args],
        **options,
    )
