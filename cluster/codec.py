"""The typed messages that may cross between nodes, encoded as msgpack; anything else is refused.

A message crosses only if its type was registered here (by the composition root, which knows the
domain's message modules; this package imports none of them). What is encoded:

* registered dataclasses, by their registered name and their fields (nested ones too);
* registered enums, by name and value;
* tuples and frozensets (kept apart from lists, so frozen dataclasses come back hashable),
  datetimes, dates, times and timedeltas (exactly: a datetime keeps its time zone or its lack
  of one, a timedelta its microseconds),
  lists, dicts, str, bytes, int, float, bool and None;
* the outcome of an ask: a reply value as above, or a :class:`~runtime.kernel.Failure` holding a
  runtime error (``Refusal`` keeps its code and detail).

Encoding an unregistered type raises :class:`UnknownMessageType` at the sender, before anything is
sent; a name the receiving node does not know raises it on decode, and the receiver refuses the
message (``unknown_message``) instead of guessing. Decoding is bounded like the gateway's.

**Two versions side by side** (a cluster upgraded one node at a time): a dataclass keeps
crossing while its fields change compatibly. A field the receiver's version does not have is
dropped (a newer sender's addition), and one the sender's version did not have takes its default
(a newer receiver's addition), so a field added with a default crosses both ways. A field that
is missing and has no default cannot be made up: the message is refused like an unknown type.
:meth:`MessageTypes.schema` describes every registered type, and
``tests/cluster/test_message_schema.py`` holds each release to the last one's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from types import ModuleType
from typing import Any

import msgpack

from runtime.errors import (
    ActorCrashed,
    ActorError,
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    Refusal,
    RestartIntensityExceeded,
)
from runtime.kernel import Failure

#: msgpack extension codes.
_DATACLASS, _ENUM, _TUPLE, _FROZENSET, _FAILURE = 1, 2, 3, 4, 5
_DATETIME, _DATE, _TIME, _TIMEDELTA = 6, 7, 8, 9

#: Bounds on what one decoded entry may build (a stream entry is at most this big).
MAX_BODY = 1 << 20

#: Runtime errors that may cross as an ask's failure, by name; subclasses cross as their nearest
#: listed base (a domain's own Refusal subclass arrives as a Refusal with its code and detail).
_ERRORS: dict[str, type[ActorError]] = {
    cls.__name__: cls
    for cls in (
        Refusal,
        ActorNotFound,
        AskTimeout,
        ActorCrashed,
        ActorStopped,
        MailboxFull,
        RestartIntensityExceeded,
        ActorError,
    )
}


class UnknownMessageType(TypeError):
    """A value of a type that is not registered to cross between nodes (refused, never guessed)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not registered to cross between nodes")
        self.what = what


def _error_name(error: ActorError) -> str:
    for cls in type(error).__mro__:
        if cls.__name__ in _ERRORS and _ERRORS[cls.__name__] is cls:
            return cls.__name__
    return "ActorError"  # unreachable: ActorError is listed


class MessageTypes:
    """Which dataclasses and enums may cross, by a stable name (``module.Class`` unless given).

    A module-qualified name means the same type on every node, whatever its version (see the
    module docstring for fields that change); a type that moves module keeps crossing if it is
    registered under an explicit name.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, type] = {}
        self._by_type: dict[type, str] = {}
        #: Each registered dataclass's field names, for decoding a payload from another version.
        self._fields: dict[type, frozenset[str]] = {}

    def register(self, *types: type, name: str | None = None) -> None:
        """Let ``types`` cross; a name (given for one type) must mean the same type on every node."""
        if name is not None and len(types) != 1:
            raise ValueError("a name is given for one type at a time")
        for cls in types:
            if not (dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum)):
                raise TypeError(f"{cls.__name__} is neither a dataclass nor an enum")
            key = name or f"{cls.__module__}.{cls.__qualname__}"
            known = self._by_name.get(key)
            if known is not None and known is not cls:
                raise ValueError(f"{key} already names {known.__module__}.{known.__qualname__}")
            self._by_name[key] = cls
            self._by_type[cls] = key
            if dataclasses.is_dataclass(cls):
                self._fields[cls] = frozenset(f.name for f in dataclasses.fields(cls))

    def register_module(
        self, module: ModuleType, *, exclude: frozenset[type] = frozenset()
    ) -> list[type]:
        """Register every dataclass and enum defined in ``module`` (not imported into it) but
        those in ``exclude`` (messages that hold live objects and never leave their node)."""
        found = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and value.__module__ == module.__name__
            and value not in exclude
            and (dataclasses.is_dataclass(value) or issubclass(value, enum.Enum))
        ]
        self.register(*found)
        return found

    def __contains__(self, cls: type) -> bool:
        return cls in self._by_type

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def schema(self) -> dict[str, dict[str, bool] | list[object]]:
        """What another version must agree with: for each registered name, a dataclass's fields
        (name: whether it has a default) or an enum's values."""
        described: dict[str, dict[str, bool] | list[object]] = {}
        for name in sorted(self._by_name):
            cls = self._by_name[name]
            if dataclasses.is_dataclass(cls):
                described[name] = {
                    f.name: f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING
                    for f in dataclasses.fields(cls)
                }
            else:
                described[name] = [member.value for member in cls]  # type: ignore[attr-defined]
        return described

    # -- encoding -----------------------------------------------------------------------------------
    def encode(self, value: object) -> bytes:
        """msgpack bytes for ``value``; raises UnknownMessageType for anything not registered."""
        packed: bytes = msgpack.packb(value, default=self._default, strict_types=True)
        return packed

    def _default(self, value: object) -> object:
        cls = type(value)
        name = self._by_type.get(cls)
        if name is not None:
            if isinstance(value, enum.Enum):
                return msgpack.ExtType(_ENUM, self.encode([name, value.value]))
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}  # type: ignore[arg-type]
            return msgpack.ExtType(_DATACLASS, self.encode([name, fields]))
        if cls is tuple:
            return msgpack.ExtType(_TUPLE, self.encode(list(value)))  # type: ignore[call-overload]
        if cls is frozenset:
            return msgpack.ExtType(_FROZENSET, self.encode(list(value)))  # type: ignore[call-overload]
        if cls is dt.datetime:
            return msgpack.ExtType(_DATETIME, value.isoformat().encode())  # type: ignore[attr-defined]
        if cls is dt.date:
            return msgpack.ExtType(_DATE, value.isoformat().encode())  # type: ignore[attr-defined]
        if cls is dt.time:
            return msgpack.ExtType(_TIME, value.isoformat().encode())  # type: ignore[attr-defined]
        if cls is dt.timedelta:
            span: dt.timedelta = value  # type: ignore[assignment]
            return msgpack.ExtType(
                _TIMEDELTA, self.encode([span.days, span.seconds, span.microseconds])
            )
        if cls is Failure:
            error = value.error  # type: ignore[attr-defined]
            attrs = {k: v for k, v in vars(error).items() if _plain(v)}
            return msgpack.ExtType(_FAILURE, self.encode([_error_name(error), str(error), attrs]))
        # Subclasses of the plain types (an Address is a str) cross as the plain type; an enum
        # that was not registered is refused above all (it is a str or int too).
        if not isinstance(value, enum.Enum):
            if isinstance(value, str):
                return str(value)
            if isinstance(value, bytes):
                return bytes(value)
            if isinstance(value, int):
                return int(value)
            if isinstance(value, float):
                return float(value)
            if isinstance(value, list):
                return list(value)
            if isinstance(value, dict):
                return dict(value)
        raise UnknownMessageType(f"{cls.__module__}.{cls.__qualname__}")

    # -- decoding -----------------------------------------------------------------------------------
    def decode(self, data: bytes) -> Any:
        """The value ``data`` encodes; UnknownMessageType for a name this node does not know."""
        if len(data) > MAX_BODY:
            raise ValueError(f"entry of {len(data)} bytes is over {MAX_BODY}")
        return msgpack.unpackb(
            data,
            ext_hook=self._ext,
            strict_map_key=False,
            raw=False,
            max_bin_len=MAX_BODY,
            max_str_len=MAX_BODY,
        )

    def _ext(self, code: int, data: bytes) -> object:
        if code == _TUPLE:
            return tuple(self.decode(data))
        if code == _FROZENSET:
            return frozenset(self.decode(data))
        if code == _DATETIME:
            return dt.datetime.fromisoformat(data.decode())
        if code == _DATE:
            return dt.date.fromisoformat(data.decode())
        if code == _TIME:
            return dt.time.fromisoformat(data.decode())
        if code == _TIMEDELTA:
            days, seconds, microseconds = self.decode(data)
            return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)
        if code == _FAILURE:
            name, text, attrs = self.decode(data)
            return Failure(_rebuild_error(name, text, attrs))
        if code in (_DATACLASS, _ENUM):
            name, payload = self.decode(data)
            cls = self._by_name.get(name)
            if cls is None:
                raise UnknownMessageType(str(name))
            if code == _ENUM:
                try:
                    return cls(payload)
                except ValueError:  # a value a newer version added
                    raise UnknownMessageType(f"{name} {payload!r}") from None
            known = self._fields[cls]
            if not known.issuperset(payload):  # a newer sender's fields: not this version's
                payload = {k: v for k, v in payload.items() if k in known}
            try:
                return cls(**payload)
            except TypeError as exc:  # an older sender lacks a field that has no default
                raise UnknownMessageType(f"{name} without all its fields ({exc})") from None
        raise UnknownMessageType(f"msgpack extension {code}")


def _plain(value: object) -> bool:
    return value is None or type(value) in (str, int, float, bool, bytes)


def _rebuild_error(name: str, text: str, attrs: dict[str, Any]) -> ActorError:
    """The error as the asker would have seen it on one node: its class, message and attributes."""
    cls = _ERRORS.get(name, ActorError)
    error = cls.__new__(cls)
    Exception.__init__(error, text)
    for key, value in attrs.items():
        setattr(error, key, value)
    return error
