"""In a real Chromium: a Ukrainian browser gets the arrival flow in Ukrainian end to end, and the
visible language switch overrides the browser's language and persists across pages."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.chromium import launch_persistent
from tests.conftest import RunningServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: Milliseconds Playwright waits for one expected thing on a loaded 2-core machine.
WAIT_MS = 20_000


def walk(base_url: str, slug: str, profile: Path) -> dict[str, str]:
    from playwright.sync_api import sync_playwright

    seen: dict[str, str] = {}
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        context = launch_persistent(pw, profile, locale="uk-UA")
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{base_url}/w/{slug}")
            seen["html_lang"] = page.get_attribute("html", "lang") or ""
            seen["arrive"] = page.inner_text("main")
            page.get_by_label("Ім’я").fill("Олена")
            page.get_by_label("Я погоджуюся").check()
            page.screenshot(path=str(ARTIFACTS / "arrive-uk.png"), full_page=True)
            page.get_by_role("button", name="Увійти до зони очікування").click()
            page.wait_for_selector("#waiting-title")
            seen["waiting"] = page.inner_text("main")
            page.screenshot(path=str(ARTIFACTS / "waiting-uk.png"), full_page=True)

            # The switch: English, although the browser still asks for Ukrainian.
            page.goto(f"{base_url}/w/{slug}")
            page.get_by_role("link", name="English").click()
            page.wait_for_load_state()
            seen["after_switch"] = page.inner_text("main")
            other = context.new_page()
            other.set_default_timeout(WAIT_MS)
            other.goto(f"{base_url}/w/{slug}")
            seen["new_tab"] = other.inner_text("main")
            seen["cookie"] = ";".join(
                f"{c['name']}={c['value']}"
                for c in context.cookies()
                if c["name"] == "waitroom_lang"
            )
        finally:
            context.close()
    return seen


@pytest.mark.browser
async def test_ukrainian_arrival_and_a_switch_that_persists(
    waitroom_server: RunningServer, tmp_path: Path
) -> None:
    _, link = waitroom_server.demo.area_links[0]
    slug = link.rsplit("/", 1)[1]
    seen = await trio.to_thread.run_sync(walk, waitroom_server.base_url, slug, tmp_path / "p")
    assert seen["html_lang"] == "uk"
    assert "Повідомте, хто ви" in seen["arrive"]
    assert "Ви в черзі" in seen["waiting"]
    assert "Незабаром до вас приєднаються" in seen["waiting"] or "Камера" in seen["waiting"]
    # This browser has already arrived, so the form page resumes the waiting page: in English now.
    for key in ("after_switch", "new_tab"):
        assert "You are waiting for" in seen[key] or "Tell us who you are" in seen[key], key
        assert "Ви в черзі" not in seen[key] and "Повідомте" not in seen[key], key
    assert seen["cookie"] == "waitroom_lang=en"
