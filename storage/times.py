"""The one time convention of the database: UTC, stored as fixed-width ISO-8601 text.

Fixed width (always microseconds, always a trailing ``Z``) makes text order equal time order, so
SQL can compare and sort timestamps as plain strings, and the file stays readable with `sqlite3`.
Python code only ever sees timezone-aware `datetime` objects in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utcnow() -> datetime:
    """The current instant, aware and in UTC."""
    return datetime.now(UTC)


def to_db(moment: datetime) -> str:
    """Encode an aware datetime for storage; naive datetimes are refused because they are ambiguous."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: storage needs timezone-aware datetimes")
    return moment.astimezone(UTC).strftime(_FORMAT)


def opt_to_db(moment: datetime | None) -> str | None:
    """`to_db` for nullable columns."""
    return None if moment is None else to_db(moment)


#: The length of every stored timestamp (``2026-12-05T00:29:59.381278Z``).
_WIDTH = 27


def from_db(text: str) -> datetime:
    """Decode a stored timestamp into an aware UTC datetime.

    `datetime.fromisoformat` for the fixed-width form (a tenth of `strptime`'s cost; an arrival
    decodes nine timestamps), `strptime` for anything else, which refuses what is not the form."""
    # The dashes rule out an ISO week date of the same width, which `fromisoformat` would read.
    if (
        len(text) == _WIDTH
        and text[4] == text[7] == "-"
        and text[10] + text[19] + text[26] == "T.Z"
    ):
        return datetime.fromisoformat(text)
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


def opt_from_db(text: str | None) -> datetime | None:
    """`from_db` for nullable columns."""
    return None if text is None else from_db(text)


def date_to_db(day: date) -> str:
    """Encode a calendar date (an area's local date, e.g. a closure) as ``YYYY-MM-DD``."""
    return day.isoformat()


def date_from_db(text: str) -> date:
    """Decode a stored calendar date."""
    return date.fromisoformat(text)
