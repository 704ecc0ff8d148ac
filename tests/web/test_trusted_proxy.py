"""Behind a reverse proxy (issue 15): the real client's address, from the trusted proxy only.

Unit tests drive the ASGI middleware with hand-built scopes; the end-to-end tests run the whole
server with 127.0.0.1 as its trusted proxy and a test client on loopback playing nginx: sign-in
failures are throttled and audited under the forwarded address, and ``/metrics`` is closed to a
forwarded outsider unless it brings the metrics token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from services.throttle import MAX_FAILURES
from storage.db import fetch_all, open_store
from tests.conftest import DEMO_PASSWORD
from tests.httpclient import HttpClient
from waitroom.server import ServerConfig, ServerInfo, run_server
from waitroom.trusted_proxy import TrustedProxy, parse_networks

METRICS_TOKEN = "scrape-token-for-tests"
OUTSIDER = "203.0.113.9"


async def seen_scope(trusted: str, scope: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    await TrustedProxy(app, parse_networks([trusted]) if trusted else ())(scope, None, None)
    return seen


def http_scope(peer: str, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "client": (peer, 5555), "scheme": "http", "headers": list(headers)}


async def test_headers_from_the_trusted_proxy_are_believed() -> None:
    scope = http_scope(
        "10.0.0.2", (b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"https")
    )
    seen = await seen_scope("10.0.0.0/24", scope)
    assert seen["client"] == ("198.51.100.7", 0)
    assert seen["scheme"] == "https"


async def test_headers_from_anyone_else_are_ignored() -> None:
    scope = http_scope("192.0.2.50", (b"x-forwarded-for", b"127.0.0.1"))
    seen = await seen_scope("10.0.0.0/24", scope)
    assert seen["client"] == ("192.0.2.50", 5555)
    assert (await seen_scope("", scope))["client"] == ("192.0.2.50", 5555)


async def test_a_client_cannot_forge_past_an_appending_proxy() -> None:
    # The client sent "127.0.0.1" itself; the proxy appended the address it really saw.
    scope = http_scope("10.0.0.2", (b"x-forwarded-for", b"127.0.0.1, 198.51.100.7"))
    assert (await seen_scope("10.0.0.0/24", scope))["client"] == ("198.51.100.7", 0)
    # Garbage in the chain: nothing left of it is believed.
    scope = http_scope("10.0.0.2", (b"x-forwarded-for", b"1.2.3.4, nonsense, 198.51.100.7"))
    assert (await seen_scope("10.0.0.0/24", scope))["client"] == ("198.51.100.7", 0)
    scope = http_scope("10.0.0.2", (b"x-forwarded-for", b"1.2.3.4, nonsense"))
    assert (await seen_scope("10.0.0.0/24", scope))["client"] == ("10.0.0.2", 5555)


async def test_websocket_scheme_follows_the_proxy() -> None:
    scope = {
        "type": "websocket",
        "client": ("10.0.0.2", 1),
        "scheme": "ws",
        "headers": [(b"x-forwarded-proto", b"https")],
    }
    assert (await seen_scope("10.0.0.2", scope))["scheme"] == "wss"


def test_bad_networks_are_named() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        parse_networks(["10.0.0.1", "nonsense"])


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    db_path = tmp_path / "waitroom.sqlite3"
    config = ServerConfig(
        port=0,
        media_udp_port=0,
        db_path=db_path,
        demo_password=DEMO_PASSWORD,
        trusted_proxies=("127.0.0.1",),
        metrics_token=METRICS_TOKEN,
    )
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(partial(run_server, config, handle_signals=False))
        yield info.url, db_path
        nursery.cancel_scope.cancel()


async def failed_sign_in(client: HttpClient, forwarded: str) -> int:
    form = await client.get("/sign-in")
    body = f"username=provider&password=wrong&csrf_token={form.csrf_token()}".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": forwarded}
    return (await client.request("POST", "/sign-in", body, headers)).status


async def test_sign_in_failures_are_throttled_and_audited_by_the_real_address(
    proxied: tuple[str, Path],
) -> None:
    url, db_path = proxied
    client = HttpClient(url)
    statuses = [await failed_sign_in(client, OUTSIDER) for _ in range(MAX_FAILURES + 1)]
    assert statuses[-1] == 429  # the proxy's loopback address no longer exempts everyone
    # Another patient-facing client behind the same proxy is not locked out by the first.
    assert await failed_sign_in(client, "198.51.100.20") == 401
    async with open_store(db_path) as store:
        rows = await store.run(
            fetch_all,
            """SELECT DISTINCT a.address AS remote_addr FROM audit_log l
                 JOIN audit_addresses a ON a.entry_id = l.id
                WHERE l.action = 'auth.sign_in_failed'""",
        )
    assert {row["remote_addr"] for row in rows} == {OUTSIDER, "198.51.100.20"}


async def test_metrics_are_closed_to_a_forwarded_outsider_without_the_token(
    proxied: tuple[str, Path],
) -> None:
    client = HttpClient(proxied[0])
    outsider = {"X-Forwarded-For": OUTSIDER}
    assert (await client.request("GET", "/metrics", None, outsider)).status == 403
    wrong = {**outsider, "Authorization": "Bearer nope"}
    assert (await client.request("GET", "/metrics", None, wrong)).status == 403
    right = {**outsider, "Authorization": f"Bearer {METRICS_TOKEN}"}
    response = await client.request("GET", "/metrics", None, right)
    assert response.status == 200
    assert "waitroom_actors" in response.text
    assert (await client.get("/metrics")).status == 200  # the host itself, unproxied


def test_serve_reads_proxies_from_flags_or_the_environment_and_the_token_from_the_environment() -> (
    None
):
    from waitroom.cli import build_parser, config_from_args

    env = {"WAITROOM_TRUSTED_PROXIES": "10.0.0.1, 10.1.0.0/16", "WAITROOM_METRICS_TOKEN": "t"}
    config = config_from_args(build_parser().parse_args(["serve"]), env)
    assert config.trusted_proxies == ("10.0.0.1", "10.1.0.0/16")
    assert config.metrics_token == "t"
    flags = build_parser().parse_args(["serve", "--trusted-proxy", "::1"])
    assert config_from_args(flags, env).trusted_proxies == ("::1",)
    assert config_from_args(build_parser().parse_args(["serve"]), {}).trusted_proxies == ()
    with pytest.raises(SystemExit, match="nonsense"):
        config_from_args(build_parser().parse_args(["serve", "--trusted-proxy", "nonsense"]), {})
