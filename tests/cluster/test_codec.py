"""What may cross between nodes: registered typed messages round-trip exactly, anything else is refused."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest

from cluster.codec import MessageTypes, UnknownMessageType
from runtime import ActorCrashed, ActorNotFound, Failure, MailboxFull, Refusal
from runtime.address import Address


class Colour(enum.Enum):
    RED = "red"


@dataclass(frozen=True)
class Inner:
    n: int
    tags: frozenset[str]


@dataclass(frozen=True)
class Outer:
    who: str
    inner: Inner
    items: tuple[Inner, ...]
    extra: dict[object, object]
    colour: Colour
    blob: bytes
    maybe: float | None = None
    flag: bool = False


@dataclass(frozen=True)
class Secret:
    value: str


def types() -> MessageTypes:
    registered = MessageTypes()
    registered.register(Inner, Outer, Colour)
    return registered


def test_a_registered_message_comes_back_equal_and_hashable() -> None:
    codec = types()
    message = Outer(
        who=Address.of("room", "AbC"),
        inner=Inner(1, frozenset({"a", "b"})),
        items=(Inner(2, frozenset()), Inner(3, frozenset({"x"}))),
        extra={"k": [1, 2, {"z": None}], "n": 2.5, 7: "int key"},
        colour=Colour.RED,
        blob=b"\x00\xff",
        maybe=None,
        flag=True,
    )
    back = codec.decode(codec.encode(message))
    assert back == message
    assert hash(back.inner) == hash(message.inner) and hash(back.items) == hash(message.items)
    assert type(back.items) is tuple and type(back.inner.tags) is frozenset
    assert back.flag is True and back.colour is Colour.RED


def test_an_unregistered_type_is_refused_at_the_sender_and_at_the_receiver() -> None:
    codec = types()
    with pytest.raises(UnknownMessageType, match="Secret"):
        codec.encode(Secret("x"))
    with pytest.raises(UnknownMessageType):
        codec.encode(Outer("a", Inner(1, frozenset()), (), {"s": Secret("x")}, Colour.RED, b""))
    with pytest.raises(UnknownMessageType):
        codec.encode({1, 2})  # a mutable set has no agreed meaning across nodes
    sender = MessageTypes()
    sender.register(Secret)
    with pytest.raises(UnknownMessageType, match="Secret"):
        codec.decode(sender.encode(Secret("x")))


def test_one_name_means_one_type() -> None:
    codec = types()

    @dataclass(frozen=True)
    class Inner:  # same name, another type
        n: int

    with pytest.raises(ValueError, match="already names"):
        codec.register(Inner, name="tests.cluster.test_codec.Inner")
    with pytest.raises(TypeError):
        codec.register(int)
    codec.register(Inner, name="OtherInner")
    assert "OtherInner" in codec.names()


def test_failures_keep_their_error_class_and_what_the_asker_reads() -> None:
    codec = types()

    class LocalRefusal(Refusal):
        pass

    for error in (
        Refusal("forbidden", "not yours"),
        LocalRefusal("closed", "the area is closed"),
        ActorNotFound("room/x"),
        MailboxFull("room/y", 8),
        ActorCrashed("room/z", Inner(1, frozenset())),
    ):
        back = codec.decode(codec.encode(Failure(error)))
        assert isinstance(back, Failure)
        assert str(back.error) == str(error)
        assert isinstance(
            back.error, type(error).__mro__[1] if type(error) is LocalRefusal else type(error)
        )
    refused = codec.decode(codec.encode(Failure(Refusal("forbidden", "not yours"))))
    assert (refused.error.code, refused.error.detail) == ("forbidden", "not yours")
    assert codec.decode(codec.encode(Failure(MailboxFull("room/y", 8)))).error.capacity == 8


def test_a_module_s_messages_are_registered_at_once_under_module_qualified_names() -> None:
    from tests.cluster import echo

    codec = MessageTypes()
    found = codec.register_module(echo)
    assert {cls.__name__ for cls in found} == {
        "Ping",
        "Pong",
        "Note",
        "Notes",
        "Deny",
        "Hold",
        "Relay",
    }
    assert "tests.cluster.echo.Ping" in codec.names()
    assert MessageTypes not in codec  # imported there, defined elsewhere: not taken
    assert codec.decode(codec.encode(echo.Pong(1, "b"))) == echo.Pong(1, "b")


# -- two versions side by side (a cluster upgraded one node at a time) -------------------------


@dataclass(frozen=True)
class JoinOld:
    """A message as the older release has it."""

    area_id: int


@dataclass(frozen=True)
class JoinNew:
    """The same message in the newer release: a field added, with a default."""

    area_id: int
    watchers: tuple[str, ...] = ()


@dataclass(frozen=True)
class JoinRequired:
    """The same message with a field added that has no default: not compatible."""

    area_id: int
    reason: str


class Level(enum.Enum):
    LOW = "low"


class LevelNew(enum.Enum):
    LOW = "low"
    HIGH = "high"


def _version(*types: type) -> MessageTypes:
    """One release's registry: each type under the one name every release uses for it."""
    registered = MessageTypes()
    for cls, name in zip(types, ("Join", "Level"), strict=False):
        registered.register(cls, name=name)
    return registered


def test_a_field_added_with_a_default_crosses_both_ways() -> None:
    old, new = _version(JoinOld, Level), _version(JoinNew, LevelNew)
    # A newer sender's field is dropped by the older receiver...
    assert old.decode(new.encode(JoinNew(7, ("conn/a",)))) == JoinOld(7)
    # ...and an older sender's message takes the newer field's default.
    assert new.decode(old.encode(JoinOld(7))) == JoinNew(7, ())
    assert old.decode(new.encode(LevelNew.LOW)) is Level.LOW


def test_what_another_version_cannot_make_up_is_refused_not_guessed() -> None:
    old, required = _version(JoinOld, Level), _version(JoinRequired, LevelNew)
    with pytest.raises(UnknownMessageType, match="without all its fields"):
        required.decode(old.encode(JoinOld(7)))  # no reason to give it
    with pytest.raises(UnknownMessageType, match="high"):
        old.decode(required.encode(LevelNew.HIGH))  # a value the older release lacks


def test_the_schema_names_each_field_and_whether_it_has_a_default() -> None:
    assert _version(JoinNew, LevelNew).schema() == {
        "Join": {"area_id": False, "watchers": True},
        "Level": ["low", "high"],
    }
