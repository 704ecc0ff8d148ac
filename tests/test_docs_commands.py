"""The operator commands printed in README.md and docs/operations.md work as written (issue 15).

Every ``waitroom ...`` line of their code blocks (continuations joined, ``sudo -u`` and the install
path dropped) is parsed by the real command-line parser, and a ``serve`` line becomes a server
configuration. The documented ``create-admin`` is run against a new database and the documented
``serve`` line seeds no demo there, so the first sign-in is that administrator's.

Failed on the old docs: step 4 of "Deploy" told production operators to sign in as the demo admin,
which an https public URL no longer creates, and no page named ``waitroom create-admin``.
"""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import pytest
import trio

from storage import seed, staff
from storage.db import open_store
from waitroom import first_admin
from waitroom.cli import build_parser, config_from_args

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "README.md", ROOT / "docs" / "operations.md")
FENCE = re.compile(r"^\s*```[a-z]*\s*\n(.*?)^\s*```", re.S | re.M)


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after ``waitroom``) for each command line in the code blocks."""
    found: list[tuple[str, list[str]]] = []
    for path in DOCS:
        for block in FENCE.findall(path.read_text()):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.split("#", 1)[0].strip().removeprefix("ExecStart=")
                words = shlex.split(line) if line else []
                if words[:2] == ["sudo", "-u"]:
                    words = words[3:]
                if words and "=" not in words[0] and Path(words[0]).name == "waitroom":
                    found.append((f"{path.name}: {line[:60]}", words[1:]))
    return found


def test_every_documented_command_parses() -> None:
    commands = documented_commands()
    kinds = {argv[0] for _, argv in commands}
    assert {"serve", "create-admin"} <= kinds, commands
    for where, argv in commands:
        args = build_parser().parse_args(argv)
        if args.command == "serve":
            config_from_args(args, {})  # raises SystemExit on a bad combination
        assert args.command in ("serve", "create-admin"), where


def test_deploy_makes_the_first_administrator_not_the_demo_admin() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    deploy = operations.split("## Deploy", 1)[1].split("\n## ", 1)[0]
    assert "waitroom create-admin" in deploy
    assert "sign in as the demo admin" not in operations
    assert "waitroom create-admin" in (ROOT / "README.md").read_text()


def test_the_documented_create_admin_and_serve_lines_start_a_real_deployment(
    tmp_path: Path,
) -> None:
    db = tmp_path / "waitroom.sqlite3"
    commands = documented_commands()
    create = next(argv for _, argv in commands if argv[0] == "create-admin")
    serve = next(argv for _, argv in commands if argv[0] == "serve" and "--public-url" in argv)
    args = build_parser().parse_args([*create, "--db", str(db)])  # the last --db wins
    assert first_admin.run(args, io.StringIO("a-long-Admin-password-1\n")) == first_admin.OK
    config = config_from_args(build_parser().parse_args([*serve, "--db", str(db)]), {})
    assert not seed.demo_allowed(config.public_url)

    async def check() -> None:
        async with open_store(db) as store:
            assert not await seed.is_empty(store)
            login = await staff.find_login(store, args.username)
            assert login is not None and login.user.active
            assert await staff.find_login(store, "admin") is None  # no demo admin

    trio.run(check)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_the_docs_still_have_their_code_blocks(path: Path) -> None:
    assert FENCE.findall(path.read_text())
