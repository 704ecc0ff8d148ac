"""Real ``waitroom serve --redis URL`` nodes for the multi-node tests: separate processes on free
ports, sharing one store, each reached directly (no load balancer in front).

The store is one SQLite file in WAL mode that every node opens (SQLite's locking works across
processes on one host: a test-only arrangement), or with ``database`` one PostgreSQL, as a real
cluster runs (docs/operations.md).

Each test starts Redis and two servers: run them under the machine-wide heavy lock
(``flock /tmp/waitroom-heavy.lock .venv/bin/pytest tests/cluster/test_serve_nodes.py``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

#: Seconds a node may take to print ``Serving on`` (migrations, seeding, joining the cluster).
START_TIMEOUT = 60.0
DEMO_PASSWORD = "cluster-demo-pass"
ROOT = Path(__file__).resolve().parent.parent.parent


class ServedNode:
    """One ``waitroom serve`` process; ``url`` once started, ``kill()`` is kill -9."""

    def __init__(
        self,
        redis_url: str,
        node_id: str,
        db: Path,
        logs: Path,
        database: str = "",
        code: Path = ROOT,
    ) -> None:
        """``code``: the tree whose ``waitroom`` runs (another release's, exported elsewhere)."""
        self.node_id = node_id
        self.log = logs / f"node-{node_id}.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "waitroom.cli", "serve",
                "--port", "0",
                "--db", str(db),
                "--redis", redis_url,
                "--node-id", node_id,
                "--demo-password", DEMO_PASSWORD,
                "--media-workers", "0",
                "--media-port", "0",
                "--log-level", "INFO",
                *(("--database", database) if database else ()),
            ],
            cwd=code,  # `python -m` puts the working directory first on the path
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(code)},
        )  # fmt: skip
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, name=f"node {node_id} out", daemon=True).start()
        self.url = ""
        self.area_links: list[str] = []
        self._wait_serving()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def _wait_serving(self) -> None:
        while not self.url:
            try:
                line = self._lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"node {self.node_id} did not start: {self.tail()}") from None
            if not line:
                raise AssertionError(f"node {self.node_id} exited: {self.tail()}")
            if line.startswith("Serving on "):
                self.url = line.split()[-1].replace("0.0.0.0", "127.0.0.1")

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def tail(self, chars: int = 3000) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text()[-chars:]

    def kill(self) -> None:
        """kill -9: no release, no goodbye; its keys expire by themselves."""
        self.process.kill()
        self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        for pipe in (self.process.stdout,):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._log_file.close()
