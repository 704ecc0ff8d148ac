"""``--consult-link-seconds`` (issue 13): the link's validity and each extension, five minutes by
default; a value outside ten seconds to an hour stops ``serve`` with a message naming the flag,
and the desk started at boot uses the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors import addresses
from actors.boot import start_actors
from actors.consult.desk import LINK_LIFETIME
from actors.consult.messages import DescribeLinkTimes, LinkTimes
from runtime import Registry, Supervisor
from storage.db import open_store
from waitroom.cli import build_parser, config_from_args


def test_the_flag_sets_the_validity_and_refuses_nonsense() -> None:
    default = config_from_args(build_parser().parse_args(["serve"]), {})
    assert default.consult_link_seconds == LINK_LIFETIME == 300
    short = config_from_args(build_parser().parse_args(["serve", "--consult-link-seconds", "20"]))
    assert short.consult_link_seconds == 20
    for bad in ("0", "5", "7200", "-300"):
        args = build_parser().parse_args(["serve", "--consult-link-seconds", bad])
        with pytest.raises(SystemExit, match="--consult-link-seconds"):
            config_from_args(args, {})


async def test_the_desk_started_at_boot_uses_the_setting(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    async with open_store(tmp_path / "w.sqlite3") as store:
        registry = Registry()
        root: Supervisor = await nursery.start(Supervisor(registry, "root").run)
        await start_actors(nursery, root, store, consult_link_seconds=42.0)
        times = await registry.ref(addresses.CONSULT).ask(DescribeLinkTimes())
        assert times == LinkTimes(42.0, 42.0, 3)
        nursery.cancel_scope.cancel()
