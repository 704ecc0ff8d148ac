"""Every message an actor handles and every reply it gives is registered to cross between nodes.

The composition root (``waitroom.clustered``) names the domain's message modules; this test walks
what the actors really handle (every ``@handles`` type of every actor class in ``actors/``) and
what their handlers return (their return annotations, nested types included), checks each is
registered, and sends a value of each registered type through the codec: it must come back equal.
A message added without registering it fails here, not on a live cluster.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import pkgutil
import types
import typing
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

import actors
from actors.messages import OpenRooms
from cluster.codec import MessageTypes, UnknownMessageType
from runtime.errors import Refusal
from runtime.kernel import Actor, Failure
from waitroom.clustered import LOCAL_ONLY, message_types


def _names_behind_type_checking() -> dict[str, Any]:
    """Names the actor modules import only for the type checker (storage rows, the store)."""
    import storage

    names: dict[str, Any] = {}
    for info in pkgutil.walk_packages(storage.__path__, "storage."):
        module = importlib.import_module(info.name)
        names.update({k: v for k, v in vars(module).items() if isinstance(v, type)})
    return names


HIDDEN = _names_behind_type_checking()


def hints_of(thing: Any) -> dict[str, Any]:
    return typing.get_type_hints(thing, localns=HIDDEN)


def actor_classes() -> list[type[Actor]]:
    found: set[type[Actor]] = set()
    for info in pkgutil.walk_packages(actors.__path__, "actors."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Actor)
                and value.__module__.startswith("actors.")
            ):
                found.add(value)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def named_types(annotation: object) -> Iterator[type]:
    """The dataclasses and enums an annotation mentions (``list[AreaSummary] | None`` ...)."""
    if isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or issubclass(annotation, enum.Enum)
    ):
        yield annotation
        if dataclasses.is_dataclass(annotation):
            hints = hints_of(annotation)
            for field in dataclasses.fields(annotation):
                yield from named_types(hints[field.name])
        return
    for arg in typing.get_args(annotation):
        yield from named_types(arg)


def handled_and_replies() -> dict[type, str]:
    """Each handled or replied type with where it was found (for the failure message)."""
    seen: dict[type, str] = {}
    for cls in actor_classes():
        for message_type, handler in cls._handlers.items():
            seen.setdefault(message_type, f"handled by {cls.__qualname__}")
            if message_type in LOCAL_ONLY:
                continue  # what it holds never crosses either
            for nested in named_types(message_type):
                seen.setdefault(nested, f"inside {message_type.__qualname__}")
            returned = hints_of(handler).get("return")
            for replied in named_types(returned):
                seen.setdefault(replied, f"replied by {cls.__qualname__}.{handler.__name__}")
    return seen


def test_the_actors_are_found() -> None:
    classes = {cls.__qualname__ for cls in actor_classes()}
    assert {"WaitingArea", "Room", "Directory", "GroupCall", "ConsultDesk"} <= classes
    assert len(handled_and_replies()) > 150


def test_every_handled_message_and_reply_type_is_registered() -> None:
    registered = message_types()
    missing = sorted(
        f"{t.__module__}.{t.__qualname__} ({where})"
        for t, where in handled_and_replies().items()
        if t not in registered and t not in LOCAL_ONLY
    )
    assert missing == []


def test_local_only_messages_are_handled_and_refused_at_the_sender() -> None:
    handled = handled_and_replies()
    registered = message_types()
    for cls in LOCAL_ONLY:
        assert cls in handled
        assert cls not in registered
    with pytest.raises(UnknownMessageType):
        registered.encode(OpenRooms(()))


# -- a value of every registered type, built from its fields' annotations ------------------------
def sample(annotation: Any, depth: int = 0) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any or annotation is object:
        return {"any": [1, "two", None]}
    if origin in (typing.Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        return sample(real[0], depth) if real else None
    if origin is typing.Literal:
        return args[0]
    if origin in (list, tuple, frozenset, set, dict) or annotation in (list, tuple, dict):
        container = origin or annotation
        if container is dict:
            key, value = args or (str, Any)
            return {sample(key, depth + 1): sample(value, depth + 1)}
        if container is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return (sample(args[0], depth + 1),)
            return tuple(sample(a, depth + 1) for a in args)
        item = sample(args[0], depth + 1) if args else "x"
        return {frozenset: frozenset, set: frozenset}.get(container, list)([item])
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return next(iter(annotation))
        if dataclasses.is_dataclass(annotation):
            return build(annotation, depth + 1)
        if annotation is bool:
            return True
        if issubclass(annotation, str):
            return "x"
        if annotation is int:
            return 1
        if annotation is float:
            return 2.5
        if annotation is bytes:
            return b"\x00\x01"
        if annotation is datetime:
            return datetime(2026, 12, 2, 4, 30, 1, 250, tzinfo=UTC)
        if annotation is date:
            return date(2026, 12, 2)
        if annotation is time:
            return time(9, 30)
        if annotation is timedelta:
            return timedelta(days=1, seconds=5, microseconds=7)
    raise AssertionError(f"no sample for {annotation!r}")


def build(cls: type, depth: int = 0) -> Any:
    hints = hints_of(cls)
    return cls(**{f.name: sample(hints[f.name], depth) for f in dataclasses.fields(cls) if f.init})


def registered_types(registry: MessageTypes) -> list[type]:
    return [registry._by_name[name] for name in registry.names()]


@pytest.mark.parametrize(
    "cls",
    registered_types(message_types()),
    ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}",
)
def test_every_registered_type_round_trips(cls: type) -> None:
    registry = message_types()
    values = list(cls) if issubclass(cls, enum.Enum) else [build(cls)]
    for value in values:
        back = registry.decode(registry.encode(value))
        assert back == value
        assert type(back) is type(value)
        # and as an ask's reply, and beside a refusal
        assert registry.decode(registry.encode([value, Failure(Refusal("x", "y"))]))[0] == value
