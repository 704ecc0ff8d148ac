"""The production password hasher: OWASP's argon2id parameters, and older hashes upgraded."""

from __future__ import annotations

from argon2 import PasswordHasher

from services.passwords import MEMORY_COST_KIB, PARALLELISM, TIME_COST, Passwords


async def test_production_hashes_use_the_owasp_argon2id_parameters() -> None:
    passwords = Passwords()
    stored = await passwords.hash("correct horse")
    assert stored.startswith("$argon2id$")
    assert f"m={MEMORY_COST_KIB},t={TIME_COST},p={PARALLELISM}" in stored
    assert (MEMORY_COST_KIB, TIME_COST, PARALLELISM) == (19456, 2, 1)
    checked = await passwords.verify(stored, "correct horse")
    assert checked.ok and not checked.needs_rehash
    assert not (await passwords.verify(stored, "wrong horse")).ok


async def test_a_hash_of_the_earlier_default_parameters_still_signs_in_and_is_renewed() -> None:
    earlier = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash("correct horse")
    checked = await Passwords().verify(earlier, "correct horse")
    assert checked.ok and checked.needs_rehash
