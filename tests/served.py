"""A real `waitroom serve` process for end-to-end tests: started on free ports, known by its banner.

Browser and end-to-end tests drive the server as an operator runs it, in its own process. They all
need the same few steps: start it with `--port 0`, read the URL and the demo waiting-area links
from the lines it prints, and stop it however the test ends. This is that, once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 30.0
"""How long the server may take to print its banner (a loaded 2-core machine, media workers)."""


@dataclass
class Served:
    """A running server: its base URL, the demo waiting-area links it printed, its process."""

    url: str
    links: list[str]
    process: subprocess.Popen[str]
    db: Path
    banner: list[str] = field(default_factory=list)


@contextmanager
def served(
    db: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[Served]:
    """Run `waitroom serve --port 0 --db <db> <args>` until the block ends.

    The banner ends with the demo admin's sign-in line; a server that exits or stays silent
    before printing its URL fails the test with the lines it did print.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "waitroom.cli", "serve", "--port", "0", "--db", str(db), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert process.stdout is not None
    server = Served("", [], process, db)
    try:
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            server.banner.append(line.rstrip())
            if line.startswith("Serving on "):
                server.url = line.split()[-1]
            elif line.startswith("Demo waiting area"):
                server.links.append(line.split()[-1])
            elif line.startswith("Demo admin sign-in"):
                break
        assert server.url, f"waitroom serve did not print its banner: {server.banner}"
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
