"""A page whose actor did not answer (busy, or starting again on another node after one died)
says so calmly and, for a GET, tries again by itself (issue 18): a caller who opens the link in
the seconds an area takes to start again lands on the form without doing anything."""

from __future__ import annotations

from runtime import Registry
from web.app import RETRY_AFTER, create_app


async def test_a_busy_get_says_it_tries_again_and_links_to_the_same_address() -> None:
    client = create_app(Registry()).test_client()  # no actor answers: every ask fails
    response = await client.get("/w/some-area?lang=en")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER)
    page = await response.get_data(as_text=True)
    assert "Service busy" in page
    assert 'id="retry-now" href="/w/some-area?lang=en"' in page
    assert f'data-retry-after="{RETRY_AFTER}"' in page
    assert "js/retry.js" in page
    assert "http-equiv" not in page  # no meta refresh (WCAG 2.2.1)


async def test_a_busy_page_in_ukrainian() -> None:
    client = create_app(Registry()).test_client()
    response = await client.get("/w/some-area", headers={"Accept-Language": "uk"})
    page = await response.get_data(as_text=True)
    assert response.status_code == 503
    assert "Service busy" not in page and "Try again now" not in page


async def test_a_form_refused_for_its_token_is_explained_in_ukrainian_too() -> None:
    """A caller whose arrival form expired meets this page (it was English on Ukrainian pages)."""
    client = create_app(Registry()).test_client()
    response = await client.post(
        "/w/some-area", form={"name": "Ада"}, headers={"Accept-Language": "uk"}
    )
    page = await response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Термін дії форми минув" in page
    assert "This form has expired" not in page
