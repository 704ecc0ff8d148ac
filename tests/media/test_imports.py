"""What a media worker process loads: no asyncio stack, and pure protocol modules without Trio.

Each check imports in a fresh interpreter, because this test process has aiortc loaded already
(the interop tests and the load tester's clip encoder use it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: asyncio itself and the asyncio-based libraries aiortc brings (aioice, its DNS and event helpers).
ASYNCIO_STACK = ("asyncio", "aiortc", "aioice", "pyee", "dns", "ifaddr", "av")
PURE_PROTOCOL_MODULES = ("media.rtp", "media.rtcp", "media.stun", "media.sdp")
#: Generous: a cold interpreter importing OpenSSL and pylibsrtp on a loaded 2-core machine.
SUBPROCESS_TIMEOUT = 60


def loaded_after(modules: tuple[str, ...]) -> set[str]:
    """Top-level packages in sys.modules after importing `modules` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=True,
    )
    return set(json.loads(result.stdout))


def test_the_worker_process_loads_no_asyncio_stack() -> None:
    loaded = loaded_after(("media.process",))
    assert "trio" in loaded  # the check itself works: the worker does run on Trio
    assert not loaded & set(ASYNCIO_STACK), sorted(loaded & set(ASYNCIO_STACK))


@pytest.mark.parametrize("module", PURE_PROTOCOL_MODULES)
def test_pure_protocol_modules_import_no_trio(module: str) -> None:
    loaded = loaded_after((module,))
    assert "media" in loaded
    assert not loaded & {"trio", *ASYNCIO_STACK}, sorted(loaded & {"trio", *ASYNCIO_STACK})
