"""Real servers for tests and benchmarks: redis-server and PostgreSQL, and cluster node processes.

Each server listens on loopback only, on a free port, with its files in a temporary directory.

Started from Debian's ``redis-server`` (``./manage test`` installs it when missing). No persistence
(the tests start a fresh server each time), bound to 127.0.0.1 only. ``pause``/``resume`` send
SIGSTOP/SIGCONT, so a test sees Redis unreachable without its data going away.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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
        self.process = self._start()
        self._wait_ready()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                redis_binary(),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(self.log),
                "--protected-mode", "yes",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

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

    def get(self, key: str) -> str | None:
        """``GET key`` (a test reads what the nodes wrote, such as who owns a placement), None
        for a missing key."""
        reply = self._command("GET", key)
        assert reply is None or isinstance(reply, str), reply
        return reply

    def keys(self, pattern: str) -> list[str]:
        """``KEYS pattern`` (a test's or a benchmark's small database only)."""
        reply = self._command("KEYS", pattern)
        assert isinstance(reply, list), reply
        return reply

    def _command(self, *args: str) -> str | list[str] | None:
        """One command over a plain socket (no client library, no event loop: callable from any
        thread); a bulk string, an array of them, or None for a missing value."""
        parts = [arg.encode() for arg in args]
        request = b"*%d\r\n" % len(parts) + b"".join(
            b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request)
            reply = sock.makefile("rb")

            def bulk(header: bytes) -> str | None:
                if not header.startswith(b"$"):
                    raise AssertionError(f"{args}: {header!r}")
                size = int(header[1:])
                return None if size < 0 else reply.read(size + 2)[:-2].decode()

            header = reply.readline()
            if header.startswith(b"*"):
                return [bulk(reply.readline()) or "" for _ in range(int(header[1:]))]
            return bulk(header)

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered until ``resume``."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop and start again on the same port, without its data (no persistence)."""
        self.stop()
        self.process = self._start()
        self._wait_ready()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class NodeProcess:
    """``tests.cluster.node_process`` running as its own process; ``lines()`` reads what it says."""

    def __init__(self, redis_url: str, node_id: str, *args: str) -> None:
        root = Path(__file__).resolve().parent.parent.parent
        self.node_id = node_id
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.cluster.node_process",
                "--redis",
                redis_url,
                "--id",
                node_id,
                *args,
            ],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._pumping = threading.Thread(target=self._pump, name=f"node {node_id} out", daemon=True)
        self._pumping.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def read(self, timeout: float = START_TIMEOUT) -> dict[str, object]:
        """The next JSON line the node prints (an AssertionError if it exits or says nothing)."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"node {self.node_id} said nothing within {timeout} s") from None
        if not line:
            raise AssertionError(f"node {self.node_id} exited with {self.process.wait(5)}")
        said: dict[str, object] = json.loads(line)
        return said

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        """kill -9: no release, no goodbye; its keys expire by themselves."""
        self.process.kill()
        self.process.wait(timeout=5)

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL) and close its pipes."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._pumping.join(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def postgres_bin() -> Path:
    """The directory of PostgreSQL's server programs (on PATH, or Debian's newest version)."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if not versions:
        raise AssertionError("PostgreSQL is not installed: ./manage test installs Debian's")
    return versions[-1].parent


class PostgresServer:
    """One PostgreSQL server: loopback, a free port, its own temporary data directory, trust auth.

    PostgreSQL refuses to run as root, so under root (CI) its files belong to the ``postgres``
    user (made by Debian's package) and it runs as that user. ``fsync=off``: a test's data only
    has to survive a restart or a crash of the server process, not of the machine.
    """

    USER = "waitroom"

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.directory = Path(tempfile.mkdtemp(prefix="waitroom-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql://{self.USER}@127.0.0.1:{self.port}/postgres"
        self.log = self.directory / "postgres.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            # setpriv execs (no forked parent in between), so signals reach postgres itself.
            self._as = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        subprocess.run(
            [*self._as, str(self.bin / "initdb"), "-D", str(self.data), "-U", self.USER,
             "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.process = self._start()
        self._wait_ready()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [*self._as, str(self.bin / "postgres"), "-D", str(self.data),
                 "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                 "-c", f"unix_socket_directories={self.directory}", "-c", "fsync=off"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # its own process group: crash() ends the backends too
            )  # fmt: skip

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT * 3
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"postgres exited: {self.log.read_text()[-2000:]}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False, timeout=10,
            )  # fmt: skip
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"postgres not ready within {START_TIMEOUT * 3} s")
            time.sleep(0.05)

    def sql(self, statement: str) -> str:
        """Run ``statement`` with psql; its unaligned output, stripped."""
        result = subprocess.run(
            ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", self.USER, "-d", "postgres", "-c", statement],
            check=True, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return result.stdout.strip()

    def restart(self) -> None:
        """A clean stop (fast shutdown) and a start on the same port and data."""
        self._shut_down()
        self.process = self._start()
        self._wait_ready()

    def crash(self) -> None:
        """kill -9 of the server and its backends, then a start: crash recovery replays the WAL."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = self._start()
        self._wait_ready()

    def _shut_down(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: roll back, checkpoint, exit
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def stop(self) -> None:
        self._shut_down()
        shutil.rmtree(self.directory, ignore_errors=True)
