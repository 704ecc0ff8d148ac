"""Two releases side by side (issue 18): the messages nodes exchange change only in ways the last
release can read, and the record of them (``waitroom/message_schema.json``) is up to date.

A cluster is upgraded one node at a time, so for a while a node of this release and one of the
last send each other every registered message. ``waitroom.message_schema`` says which changes
the other release could not read; the codec's handling of the rest is in ``test_codec.py``.
"""

from __future__ import annotations

from waitroom.message_schema import current, problems, recorded


def test_every_message_reads_as_the_last_release_sends_it() -> None:
    found = problems(recorded(), current())
    assert found == [], (
        "a change the other release could not read (waitroom/message_schema.py says what to do): "
        + "; ".join(found)
    )


def test_the_record_is_up_to_date() -> None:
    assert current() == recorded(), (
        "messages changed: record them with `python -m waitroom.message_schema --write`"
    )


def test_what_the_last_release_could_not_read_is_named() -> None:
    before = {
        "m.Join": {"area_id": False, "why": False, "note": True},
        "m.Level": ["low", "high"],
        "m.Gone": {"x": False},
        "m.Flip": ["a"],
    }
    now = {
        "m.Join": {"area_id": False, "watchers": True, "reason": False},
        "m.Level": ["low"],
        "m.Flip": {"a": False},
        "m.New": {"y": False},  # a new type: the last release refuses it, and says so
    }
    assert problems(before, now) == [
        "m.Flip changed between a dataclass and an enum",
        "m.Gone is gone: the last release still sends it",
        "m.Join.why is gone: the last release needs it (no default)",
        "m.Join.reason is new with no default: the last release omits it",
        "m.Level lost the values ['high']: the last release still sends them",
    ]
