"""The messages nodes exchange, recorded, so that two releases can run side by side.

A cluster is upgraded one node at a time (docs/operations.md), so for a while nodes of this
release and the last one send each other messages. The codec (``cluster.codec``) drops a field
its receiver does not know and fills a missing one from its default; what it cannot do is make
up a field that has no default, or a type or enum value the receiver's release lacks.

``message_schema.json`` beside this module records every registered message as the cluster
speaks it. :func:`problems` says how the code differs from it in a way the other release could
not read; the test of the schema (``tests/cluster/test_message_schema.py``) fails on those and
on a record that is out of date. ``python -m waitroom.message_schema --write`` records the
current messages, and refuses while a change is incompatible: add a field with a default, keep a
type or value one release longer, or (a release that cannot run beside the last one) say so in
the release notes and write with ``--break``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from waitroom.clustered import message_types

RECORD = Path(__file__).with_name("message_schema.json")

Schema = dict[str, Any]


def current() -> Schema:
    """This code's messages, as :meth:`cluster.codec.MessageTypes.schema` describes them."""
    return message_types().schema()


def recorded(path: Path = RECORD) -> Schema:
    loaded: Schema = json.loads(path.read_text())
    return loaded


def problems(before: Schema, now: Schema) -> list[str]:
    """What a node of ``before``'s release and one of ``now``'s could not read of each other."""
    found: list[str] = []
    for name, was in sorted(before.items()):
        if name not in now:
            found.append(f"{name} is gone: the last release still sends it")
            continue
        is_ = now[name]
        if isinstance(was, list) or isinstance(is_, list):
            if not (isinstance(was, list) and isinstance(is_, list)):
                found.append(f"{name} changed between a dataclass and an enum")
                continue
            lost = [value for value in was if value not in is_]
            if lost:
                found.append(f"{name} lost the values {lost}: the last release still sends them")
            continue
        for field, had_default in sorted(was.items()):
            if field not in is_ and not had_default:
                found.append(f"{name}.{field} is gone: the last release needs it (no default)")
        for field, has_default in sorted(is_.items()):
            if field not in was and not has_default:
                found.append(f"{name}.{field} is new with no default: the last release omits it")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="record the current messages")
    parser.add_argument(
        "--break", dest="breaking", action="store_true", help="record them though incompatible"
    )
    args = parser.parse_args(argv)
    now = current()
    found = problems(recorded(), now) if RECORD.exists() else []
    for problem in found:
        print(problem)
    if args.write and (not found or args.breaking):
        RECORD.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(now)} message types in {RECORD.name}")
        return 0
    return 1 if found or args.write else 0


if __name__ == "__main__":
    raise SystemExit(main())
