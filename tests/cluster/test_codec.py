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
