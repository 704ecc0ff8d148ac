"""The staff console: the one page staff land on after sign-in, made of sections.

Every kind of work a member of staff has (their waiting areas with who waits, group sessions,
meeting rooms, their user room, pending Consult Now links ...) is one *section* of the console,
so a new feature adds a section instead of a page of its own that nobody finds. The API:

    from web import console

    async def load(principal: Principal) -> Mapping[str, object] | None:
        reply = await security.ask(addresses.SOMETHING, ListMine(principal))
        return {"rooms": reply} if reply else None

    console.register_section("meeting_rooms", order=30, loader=load)

and a template ``web/templates/staff/console/meeting_rooms.html``, included with two variables:
``section`` (the mapping the loader returned) and ``principal``. Conventions:

- ``name``: lowercase letters, digits and ``_``; it names the partial and the section's ``id``
  (``console-<name>``). Registering the same name again replaces the earlier section (a module
  imported twice registers once).
- ``order``: sections render in ascending order. Taken: 10 waiting areas, 20 group sessions,
  30 meeting rooms, 40 user room, 50 Consult Now links; leave gaps.
- The loader asks the actors (never storage) for the signed-in principal's own data; every rule is
  the actor's. Return ``None`` when this person has nothing there: the section is left out.
- Loaders run side by side, each bounded by :data:`SECTION_TIMEOUT`. One that is refused, fails
  or is late does not take the console down: its section shows "could not be loaded" instead.
- The partial is rendered on its own (a broken one shows the same notice as a failed loader),
  with ``section``, ``principal`` and the usual template globals. It starts with its own
  ``<section class="console__section" id="console-<name>" ...>`` and an ``<h2>``, may bring its
  own script (``<script src=... defer>``) and speaks to the gateway like the rest: the
  page already loads ``vendor/msgpack.min.js`` and ``js/wire.js`` (``WaitroomWire``) before the
  sections (``defer``: run your script deferred too).

Register at import time of the feature's web module (the one ``web/app.py`` imports for its
blueprint), so the section exists before the first request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

import trio
from markupsafe import Markup
from quart import render_template

from actors.principal import Principal
from runtime import ActorError, Refusal
from web import security

__all__ = [
    "SECTION_TIMEOUT",
    "Loader",
    "Section",
    "load_sections",
    "register_section",
    "render_console",
]

log = logging.getLogger(__name__)

#: Seconds a section's loader may take before its section says it could not be loaded.
SECTION_TIMEOUT = 5.0

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

Loader = Callable[[Principal], Awaitable[Mapping[str, object] | None]]


@dataclass(frozen=True)
class _Registered:
    name: str
    order: int
    loader: Loader


@dataclass(frozen=True)
class Section:
    """One section as the console template renders it: ``failed`` means show a notice instead."""

    name: str
    order: int
    data: Mapping[str, object]
    failed: bool = False

    @property
    def template(self) -> str:
        return f"staff/console/{self.name}.html"


_sections: dict[str, _Registered] = {}


def register_section(name: str, order: int, loader: Loader) -> None:
    """Add (or replace) the console section ``name``; see the module docstring."""
    if not _NAME.match(name):
        raise ValueError(f"a console section name is lowercase letters, digits and _: {name!r}")
    _sections[name] = _Registered(name, order, loader)


def registered() -> list[str]:
    """The section names in the order they render (for tests and the docs)."""
    return [s.name for s in sorted(_sections.values(), key=lambda s: (s.order, s.name))]


async def load_sections(principal: Principal) -> list[Section]:
    """Every registered section's data for ``principal``, loaded side by side, in order."""
    entries = sorted(_sections.values(), key=lambda s: (s.order, s.name))
    results: dict[str, Section | None] = {}

    async def load(entry: _Registered) -> None:
        try:
            with trio.fail_after(SECTION_TIMEOUT):
                data = await entry.loader(principal)
        except (trio.TooSlowError, Refusal, ActorError, security.WebError) as error:
            log.warning("console section %s could not be loaded: %s", entry.name, type(error))
            results[entry.name] = Section(entry.name, entry.order, {}, failed=True)
            return
        except Exception:  # a bug in one loader must not take the staff landing page down
            log.exception("console section %s could not be loaded", entry.name)
            results[entry.name] = Section(entry.name, entry.order, {}, failed=True)
            return
        results[entry.name] = None if data is None else Section(entry.name, entry.order, dict(data))

    async with trio.open_nursery() as nursery:
        for entry in entries:
            nursery.start_soon(load, entry)
    return [s for e in entries if (s := results.get(e.name)) is not None]


async def render_console(principal: Principal) -> str:
    """The console page for ``principal`` (``/``, and ``/dashboard`` for old links).

    Each partial is rendered on its own, so a section whose template breaks (a bug, a link to a
    page not there yet) shows "could not be loaded" instead of taking the landing page down.
    """
    rendered: list[tuple[Section, Markup]] = []
    for section in await load_sections(principal):
        html = Markup("")
        if not section.failed:
            try:
                html = Markup(
                    await render_template(
                        section.template, section=section.data, principal=principal
                    )
                )
            except Exception:  # whatever one partial does wrong, the others still render
                log.exception("console section %s could not be rendered", section.name)
                section = replace(section, failed=True)
        rendered.append((section, html))
    return await render_template("staff/console.html", sections=rendered, principal=principal)
