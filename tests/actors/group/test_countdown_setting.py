"""``--breakout-countdown-seconds``: how long breakout rooms count down before everyone is back in
the main call, 60 s by default; a value outside ten seconds to five minutes stops ``serve`` with a
message naming the flag. (The group browser test runs a server with 15 s and sees both closings
end at that pace.)"""

from __future__ import annotations

import pytest

from actors.group.breakout_plan import CLOSING_COUNTDOWN
from waitroom.cli import build_parser, config_from_args


def test_the_flag_sets_the_countdown_and_refuses_nonsense() -> None:
    default = config_from_args(build_parser().parse_args(["serve"]), {})
    assert default.breakout_countdown_seconds == CLOSING_COUNTDOWN == 60
    args = build_parser().parse_args(["serve", "--breakout-countdown-seconds", "15"])
    assert config_from_args(args, {}).breakout_countdown_seconds == 15
    for bad in ("0", "9", "301", "-60"):
        args = build_parser().parse_args(["serve", "--breakout-countdown-seconds", bad])
        with pytest.raises(SystemExit, match="--breakout-countdown-seconds"):
            config_from_args(args, {})
