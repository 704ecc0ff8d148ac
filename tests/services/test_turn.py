"""TURN REST API credentials and the TURN settings: checked at start-up, fresh for every page."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from services.turn import (
    DEFAULT_TTL,
    TurnConfig,
    TurnConfigError,
    credentials,
    ice_servers,
    parse_url,
)
from waitroom.cli import build_parser, config_from_args
from waitroom.server import ServerConfig

SECRET = "north-wing-secret"


def test_credentials_follow_the_turn_rest_api_scheme() -> None:
    username, password = credentials(SECRET, "a1b2", 1_700_000_000)
    assert username == "1700000000:a1b2"
    expected = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(password) == expected and len(expected) == 20


def test_ice_servers_expire_after_the_ttl_and_name_nobody() -> None:
    config = TurnConfig(
        urls=("stun:turn.example.org", "turn:turn.example.org:3478", "turns:turn.example.org:443"),
        secret=SECRET,
        ttl=600,
    )
    stun, turn = ice_servers(config, now=1000.0)
    assert stun == {"urls": ["stun:turn.example.org"]}
    assert turn["urls"] == ["turn:turn.example.org:3478", "turns:turn.example.org:443"]
    username = str(turn["username"])
    expires, user = username.split(":")
    assert int(expires) == 1600 and len(user) == 16
    assert credentials(SECRET, user, 1600) == (username, turn["credential"])
    (_, again) = ice_servers(config, now=1000.0)
    assert again["username"] != username  # a random id per page, never the same person twice


def test_no_urls_hand_out_nothing() -> None:
    assert ice_servers(TurnConfig()) == []
    assert TurnConfig().ttl == DEFAULT_TTL


@pytest.mark.parametrize(
    "url",
    [
        "turn:turn.example.org",
        "turn:turn.example.org:3478?transport=udp",
        "turn:192.0.2.1:3478?transport=tcp",
        "turns:turn.example.org:5349?transport=tcp",
        "turn:[2001:db8::1]:3478",
        "stun:stun.example.org:3478",
    ],
)
def test_good_urls_pass(url: str) -> None:
    assert parse_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://turn.example.org",
        "turn://turn.example.org",
        "turn:turn.example.org:70000",
        "turn:turn.example.org?transport=sctp",
        "stun:stun.example.org?transport=tcp",
        "turn:user@turn.example.org",
        "turn:turn.example.org\n",
        "",
    ],
)
def test_bad_urls_are_refused_at_start_up(url: str) -> None:
    with pytest.raises(TurnConfigError):
        TurnConfig(urls=(url,), secret=SECRET)


def test_a_turn_url_without_the_secret_is_refused() -> None:
    with pytest.raises(TurnConfigError, match="secret"):
        TurnConfig(urls=("turn:turn.example.org",))
    TurnConfig(urls=("stun:stun.example.org",))  # STUN needs none


@pytest.mark.parametrize("ttl", [0, 59, 8 * 24 * 3600])
def test_a_lifetime_out_of_bounds_is_refused(ttl: int) -> None:
    with pytest.raises(TurnConfigError):
        TurnConfig(urls=("turn:t.example.org",), secret=SECRET, ttl=ttl)


def serve_config(argv: list[str], env: dict[str, str]) -> ServerConfig:
    return config_from_args(build_parser().parse_args(["serve", *argv]), env)


def test_serve_reads_turn_from_flags_and_the_secret_from_the_environment() -> None:
    config = serve_config(
        ["--turn-url", "turn:t.example.org:3478", "--turn-url", "turns:t.example.org:5349"],
        {"WAITROOM_TURN_SECRET": SECRET, "WAITROOM_MEDIA_TCP_PORT": "4443"},
    )
    assert config.turn == TurnConfig(
        urls=("turn:t.example.org:3478", "turns:t.example.org:5349"), secret=SECRET
    )
    assert config.media_tcp_port == 4443 and config.ice_transport_policy == "all"
    env = {
        "WAITROOM_TURN_URLS": "turn:a.example.org, stun:b.example.org",
        "WAITROOM_TURN_TTL": "600",
    }
    config = serve_config(["--media-tcp-port", "0"], {**env, "WAITROOM_TURN_SECRET": SECRET})
    assert config.turn.urls == ("turn:a.example.org", "stun:b.example.org")
    assert config.turn.ttl == 600 and config.media_tcp_port == 0


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--turn-url", "turn:t.example.org"], {}),  # no secret
        (["--turn-url", "http://t.example.org"], {"WAITROOM_TURN_SECRET": SECRET}),
        (["--media-tcp-port", "70000"], {}),
        ([], {"WAITROOM_MEDIA_TCP_PORT": "many"}),
        (["--turn-url", "turn:t.example.org", "--turn-ttl", "5"], {"WAITROOM_TURN_SECRET": "s"}),
    ],
)
def test_serve_refuses_turn_and_tcp_settings_that_cannot_work(
    argv: list[str], env: dict[str, str]
) -> None:
    with pytest.raises(SystemExit, match="waitroom serve"):
        serve_config(argv, env)
