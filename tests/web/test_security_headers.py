"""Strict-Transport-Security when users reach us over HTTPS, never over plain HTTP (issue 15)."""

from __future__ import annotations

from runtime import Registry
from web.app import HSTS_MAX_AGE, WebConfig, create_app

HSTS = "Strict-Transport-Security"


async def test_no_hsts_over_plain_http() -> None:
    client = create_app(Registry(), WebConfig(public_url="http://clinic.example")).test_client()
    response = await client.get("/lang/en")
    assert HSTS not in response.headers


async def test_hsts_when_the_public_url_is_https_behind_a_proxy() -> None:
    client = create_app(Registry(), WebConfig(public_url="https://clinic.example")).test_client()
    response = await client.get("/lang/en")
    assert response.headers[HSTS] == f"max-age={HSTS_MAX_AGE}"


async def test_hsts_when_served_over_https_directly() -> None:
    client = create_app(Registry(), WebConfig()).test_client()
    response = await client.get("/lang/en", scheme="https")
    assert response.headers[HSTS] == f"max-age={HSTS_MAX_AGE}"
    plain = await client.get("/lang/en")
    assert HSTS not in plain.headers
