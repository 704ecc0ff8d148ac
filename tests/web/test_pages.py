"""Staff pages over a real server and a real HTTP client: health, sign-in, sessions, CSRF."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import trio

from actors.staff.directory import DIRECTORY_ADDRESS, ResolveSession
from runtime import Refusal
from services.throttle import MAX_FAILURES
from storage import audit
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient, Response
from web.security import ANON_CSRF_COOKIE, SESSION_COOKIE


def count_rows(db_path: Path, table: str) -> int:
    with sqlite3.connect(db_path) as conn:
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(count)


async def rows(server: RunningServer, table: str) -> int:
    return await trio.to_thread.run_sync(count_rows, server.db_path, table)


async def sign_in(client: HttpClient, username: str, password: str) -> Response:
    page = await client.get("/sign-in")
    return await client.post(
        "/sign-in",
        {"username": username, "password": password, "csrf_token": page.csrf_token()},
    )


async def test_healthz_reports_actors_storage_and_gateway(waitroom_server: RunningServer) -> None:
    response = await HttpClient(waitroom_server.base_url).get("/healthz")
    assert response.status == 200
    assert response.header("content-type") == "application/json"
    body = response.json()
    assert isinstance(body, dict)
    assert body["status"] == "ok"
    assert body["storage"] == "ok"
    assert body["gateway"] == "ok"
    assert body["actors"] >= 1


async def test_home_page_sends_strangers_to_sign_in(waitroom_server: RunningServer) -> None:
    response = await HttpClient(waitroom_server.base_url).get("/")
    assert response.status == 303
    assert response.header("location") == "/sign-in?next=/"


def without_values(html: str) -> str:
    return re.sub(r'value="[^"]*"', "", html)


def failed_sign_ins(db_path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db_path) as conn:
        found = conn.execute(
            """SELECT l.subject, COALESCE(a.address, ''), l.details FROM audit_log l
                 LEFT JOIN audit_addresses a ON a.entry_id = l.id
                WHERE l.action = ? ORDER BY l.id""",
            (audit.SIGN_IN_FAILED,),
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in found]


async def test_wrong_password_is_refused_with_a_message_and_audited(
    waitroom_server: RunningServer,
) -> None:
    """A failed sign-in leaves an audit row (username typed, address; never the password) and
    no session, and the client cannot tell a wrong password from an unknown username."""
    client = HttpClient(waitroom_server.base_url)
    username = waitroom_server.demo.provider_username
    audit_before = await rows(waitroom_server, "audit_log")
    response = await sign_in(client, username, "not the password")
    assert response.status == 401
    assert "The username or password is not right" in response.text
    assert 'role="alert"' in response.text
    assert SESSION_COOKIE not in client.cookies
    assert await rows(waitroom_server, "web_sessions") == 0
    stranger = HttpClient(waitroom_server.base_url)
    unknown = await sign_in(stranger, "nobody-here", "not the password")
    assert unknown.status == response.status
    # The same page but for the echoed username and the form's token.
    assert without_values(unknown.text) == without_values(response.text)
    assert await rows(waitroom_server, "audit_log") == audit_before + 2
    failed = await trio.to_thread.run_sync(failed_sign_ins, waitroom_server.db_path)
    assert [(subject, addr) for subject, addr, _ in failed] == [
        (username, "127.0.0.1"),
        ("nobody-here", "127.0.0.1"),
    ]
    assert all("not the password" not in details for _, _, details in failed)


async def test_repeated_failures_from_one_address_get_a_clear_429(
    waitroom_server: RunningServer,
) -> None:
    # 127.0.0.1 is never throttled (a same-host proxy); this client is another loopback address.
    client = HttpClient(waitroom_server.base_url, source_address="127.0.0.2")
    username = waitroom_server.demo.provider_username
    for attempt in range(MAX_FAILURES):
        assert (await sign_in(client, username, f"guess number {attempt}")).status == 401
    refused = await sign_in(client, username, DEMO_PASSWORD)
    assert refused.status == 429
    assert "Too many failed sign-ins" in refused.text and 'role="alert"' in refused.text
    assert SESSION_COOKIE not in client.cookies
    failed = await trio.to_thread.run_sync(failed_sign_ins, waitroom_server.db_path)
    assert len(failed) == MAX_FAILURES + 1 and '"throttled"' in failed[-1][2]
    assert {address for _, address, _ in failed} == {"127.0.0.2"}
    # Everyone else, including a proxy on this host, still signs in.
    colleague = HttpClient(waitroom_server.base_url)
    assert (await sign_in(colleague, username, DEMO_PASSWORD)).status == 303


async def test_sign_in_sets_a_strict_cookie_and_a_fresh_id_every_time(
    waitroom_server: RunningServer,
) -> None:
    client = HttpClient(waitroom_server.base_url)
    demo = waitroom_server.demo
    response = await sign_in(client, demo.provider_username, DEMO_PASSWORD)
    assert response.status == 303
    assert response.header("location") == "/"
    [cookie] = [c for c in response.set_cookies() if c.startswith(f"{SESSION_COOKIE}=")]
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert "secure" not in attributes  # plain http in this test; https sets it
    first = client.cookies[SESSION_COOKIE]

    home = await client.get("/")
    assert home.status == 200
    assert "Dr Demo Provider" in home.text
    assert "General Practice" in home.text
    assert "/w/" in home.text

    # Signing in again from the same browser (a sign-in tab left open) never reuses the session
    # id, and ends the old session.
    form = {"username": demo.provider_username, "password": DEMO_PASSWORD}
    again = await client.post("/sign-in", form | {"csrf_token": home.csrf_token()})
    assert again.status == 303
    second = client.cookies[SESSION_COOKIE]
    assert second != first
    with pytest.raises(Refusal):
        await waitroom_server.registry.ref(DIRECTORY_ADDRESS).ask(ResolveSession(first))


async def test_sign_in_without_a_csrf_token_is_refused(waitroom_server: RunningServer) -> None:
    client = HttpClient(waitroom_server.base_url)
    await client.get("/sign-in")
    form = {"username": waitroom_server.demo.provider_username, "password": DEMO_PASSWORD}
    for token in (None, "", "forged"):
        response = await client.post(
            "/sign-in", form if token is None else form | {"csrf_token": token}
        )
        assert response.status == 400
        assert "form could not be accepted" in response.text
    assert SESSION_COOKIE not in client.cookies
    assert await rows(waitroom_server, "web_sessions") == 0


async def test_the_anonymous_token_must_pair_with_its_cookie(
    waitroom_server: RunningServer,
) -> None:
    victim, attacker = HttpClient(waitroom_server.base_url), HttpClient(waitroom_server.base_url)
    attackers_token = (await attacker.get("/sign-in")).csrf_token()
    await victim.get("/sign-in")
    assert victim.cookies[ANON_CSRF_COOKIE] != attacker.cookies[ANON_CSRF_COOKIE]
    response = await victim.post(
        "/sign-in",
        {"username": "provider", "password": DEMO_PASSWORD, "csrf_token": attackers_token},
    )
    assert response.status == 400


async def test_a_signed_in_post_needs_the_sessions_token(waitroom_server: RunningServer) -> None:
    client = HttpClient(waitroom_server.base_url)
    await sign_in(client, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    home = await client.get("/")
    token = home.csrf_token()
    other = HttpClient(waitroom_server.base_url)
    await sign_in(other, waitroom_server.demo.admin_username, DEMO_PASSWORD)
    others_token = (await other.get("/")).csrf_token()
    assert others_token != token

    for form in ({}, {"csrf_token": ""}, {"csrf_token": "wrong"}, {"csrf_token": others_token}):
        response = await client.post("/sign-out", form)
        assert response.status == 400
        # Nothing changed: still signed in.
        assert (await client.get("/")).status == 200


async def test_sign_out_ends_the_session_for_good(waitroom_server: RunningServer) -> None:
    client = HttpClient(waitroom_server.base_url)
    await sign_in(client, waitroom_server.demo.provider_username, DEMO_PASSWORD)
    session_id = client.cookies[SESSION_COOKIE]
    token = (await client.get("/")).csrf_token()
    response = await client.post("/sign-out", {"csrf_token": token})
    assert response.status == 303
    assert response.header("location") == "/sign-in?signed_out=1"
    assert SESSION_COOKIE not in client.cookies
    signed_out = await client.get("/sign-in?signed_out=1")
    assert "You have signed out" in signed_out.text

    # Replaying the old cookie gets nowhere.
    replay = HttpClient(waitroom_server.base_url, {SESSION_COOKIE: session_id})
    assert (await replay.get("/")).status == 303
    with pytest.raises(Refusal) as refused:
        await waitroom_server.registry.ref(DIRECTORY_ADDRESS).ask(ResolveSession(session_id))
    assert refused.value.code == "unauthenticated"


async def test_sign_in_returns_to_a_local_page_only(waitroom_server: RunningServer) -> None:
    client = HttpClient(waitroom_server.base_url)
    page = await client.get("/sign-in?next=/healthz")
    form = {
        "username": waitroom_server.demo.provider_username,
        "password": DEMO_PASSWORD,
        "csrf_token": page.csrf_token(),
    }
    assert (await client.post("/sign-in", form | {"next": "/healthz"})).header("location") == (
        "/healthz"
    )
    for hostile in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        client = HttpClient(waitroom_server.base_url)
        page = await client.get("/sign-in")
        response = await client.post(
            "/sign-in", form | {"next": hostile, "csrf_token": page.csrf_token()}
        )
        assert response.header("location") == "/"


async def test_pages_carry_security_headers_and_static_assets_load(
    waitroom_server: RunningServer,
) -> None:
    client = HttpClient(waitroom_server.base_url)
    page = await client.get("/sign-in")
    assert page.header("x-frame-options") == "DENY"
    assert page.header("referrer-policy") == "no-referrer"
    assert "frame-ancestors 'none'" in (page.header("content-security-policy") or "")
    css = await client.get("/static/css/base.css")
    assert css.status == 200
    assert "--brand" in css.text
    missing = await client.get("/no/such/page")
    assert missing.status == 404
    assert "Page not found" in missing.text
