"""A real redis-server for tests and benchmarks: loopback, a free port, a temporary directory.

Started from Debian's ``redis-server`` (``./manage test`` installs it when missing). No persistence
(the tests start a fresh server each time), bound to 127.0.0.1 only. ``pause``/``resume`` send
SIGSTOP/SIGCONT, so a test sees Redis unreachable without its data going away.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

#: Seconds a new server may take to accept connections.
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_binary() -> str:
    """The redis-server on PATH (or Debian's path); a missing one fails the test, never skips it."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise AssertionError("redis-server is not installed: ./manage test installs Debian's")
    return found


class RedisServer:
    """One redis-server process; ``url`` to connect, ``stop()`` to end it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = directory / "redis.log"
        self.process = subprocess.Popen(
            [
                redis_binary(),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(directory),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(self.log),
                "--protected-mode", "yes",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server not ready within {START_TIMEOUT} s")
            time.sleep(0.02)

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered until ``resume``."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
