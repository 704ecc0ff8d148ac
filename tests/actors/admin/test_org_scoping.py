"""Issue 15: an organisation administrator sees only their own organisation's data.

Two organisations in one real store; the admin of org A asks for org B's outbox (patients'
emails and phone numbers) and gets none of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from actors.admin.outbox import OUTBOX_ADDRESS, ListOutbox
from actors.principal import Grant, Principal, Role, Scope
from storage import areas, orgs
from storage import outbox as outbox_store
from storage.db import Store, open_store
from tests.actors.admin.test_outbox import start


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(tmp_path / "waitroom.sqlite3") as opened:
        yield opened


async def test_outbox_lists_only_the_admins_own_organisation(
    store: Store, nursery: trio.Nursery
) -> None:
    setup = await start(nursery, store, {})
    other = await orgs.create_organisation(store, "Other clinic")
    unit = await orgs.create_unit(store, other.id, "Ward")
    foreign_area = await areas.create_area(store, unit.id, "Foreign GP")
    await outbox_store.enqueue(store, "email", "own@example.org", "own", area_id=setup.area_id)
    await outbox_store.enqueue(store, "sms", "+44 7700 900123", "x", area_id=foreign_area.id)
    own = await setup.registry.ref(OUTBOX_ADDRESS).ask(ListOutbox(setup.admin))
    assert [m.recipient for m in own] == ["own@example.org"]
    other_admin = Principal(
        "staff",
        "Other admin",
        "99",
        str(other.id),
        frozenset({Grant(Role.ORG_ADMIN, Scope.ORG, str(other.id))}),
    )
    theirs = await setup.registry.ref(OUTBOX_ADDRESS).ask(ListOutbox(other_admin))
    assert [m.recipient for m in theirs] == ["+44 7700 900123"]


async def test_audit_of_another_organisations_area_is_empty_like_a_missing_one(
    store: Store, nursery: trio.Nursery
) -> None:
    from actors import addresses
    from actors.admin.reports import ListAudit
    from storage import audit

    setup = await start(nursery, store, {})
    other = await orgs.create_organisation(store, "Other clinic")
    unit = await orgs.create_unit(store, other.id, "Ward")
    foreign_area = await areas.create_area(store, unit.id, "Foreign GP")
    action = audit.ACTIONS[0]
    await audit.append(store, action, area_id=foreign_area.id, subject="foreign")
    admin = setup.registry.ref(addresses.ADMIN)
    asked = await admin.ask(ListAudit(setup.admin, area_id=foreign_area.id))
    missing = await admin.ask(ListAudit(setup.admin, area_id=987654))
    assert asked == missing == []
    everything = await admin.ask(ListAudit(setup.admin))
    assert all(e.area_id != foreign_area.id for e in everything)
