"""``waitroom create-admin``: the first administrator of a real deployment's empty database.

A server whose public URL is https seeds no demo users (the well-known names ``provider`` and
``admin`` with a password printed to the journal would be a way in), so the operator needs
another way to the first sign-in. This creates the organisation, its first unit (a clinic) and
one organisation administrator, who sets up areas and staff from the pages. The password is read from
standard input (asked twice on a terminal), never from the command line, which ``ps`` shows to
every user of the host, and it is never printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TextIO

import trio

from actors.admin.setup_rules import MAX_PASSWORD, MIN_PASSWORD
from services.passwords import Passwords
from storage import seed
from storage.db import open_store
from storage.errors import DatabaseNotEmptyError

#: Exit codes: done, refused (the database has data), bad input.
OK, NOT_EMPTY, BAD_INPUT = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=Path("waitroom.sqlite3"), help="the database")
    parser.add_argument("--org", required=True, help="the organisation's name")
    parser.add_argument("--unit", default="", help="the first unit (clinic); default: --org")
    parser.add_argument("--username", required=True, help="the administrator's sign-in name")
    parser.add_argument("--name", default="", help="the administrator's full name")


def read_password(stdin: TextIO) -> str | None:
    """The new password: asked twice on a terminal, else the first line of ``stdin``; None when
    the two differ."""
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        return first if getpass.getpass("Again: ") == first else None
    return stdin.readline().rstrip("\r\n")


async def create(args: argparse.Namespace, password: str) -> int:
    org = args.org.strip()
    username = args.username.strip()
    async with open_store(args.db) as store:
        password_hash = await Passwords().hash(password)
        return await seed.seed_first_admin(
            store, org, args.unit.strip() or org, username, args.name or username, password_hash
        )


def run(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    if not args.org.strip() or not args.username.strip():
        print("waitroom create-admin: --org and --username must not be blank", file=sys.stderr)
        return BAD_INPUT
    password = read_password(stdin or sys.stdin)
    if password is None:
        print("waitroom create-admin: the passwords differ", file=sys.stderr)
        return BAD_INPUT
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        print(
            f"waitroom create-admin: the password must be {MIN_PASSWORD} to {MAX_PASSWORD} "
            "characters long",
            file=sys.stderr,
        )
        return BAD_INPUT
    try:
        trio.run(create, args, password)
    except DatabaseNotEmptyError:
        print(
            "waitroom create-admin: the database already has an organisation or staff; "
            "administrators add staff from the pages",
            file=sys.stderr,
        )
        return NOT_EMPTY
    print(f"Created {args.username.strip()}, administrator of {args.org.strip()}")
    return OK
