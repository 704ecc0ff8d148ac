"""CPU time of processes from Linux /proc, for the benchmarks that run a server or workers as
child processes and report what those cost, not what the benchmark's own process did."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parent_and_cpu(pid: int) -> tuple[int, float]:
    """The parent pid and the user + system CPU seconds so far of one process (OSError if gone)."""
    # After "pid (command) ": state, ppid, ...; utime and stime are the 12th and 13th fields.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds(*pids: int) -> float:
    """User + system CPU seconds so far of these processes together (those gone count nothing)."""
    total = 0.0
    for pid in pids:
        try:
            total += parent_and_cpu(pid)[1]
        except OSError:
            continue  # exited meanwhile
    return total


def process_tree(pid: int) -> list[int]:
    """A process and its live descendants (a server and its media workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = parent_and_cpu(int(entry.name))[0]
            except OSError:
                continue  # exited meanwhile
    members, todo = [], [pid]
    while todo:
        current = todo.pop()
        members.append(current)
        todo += [child for child, parent in parents.items() if parent == current]
    return members


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live descendants."""
    return cpu_seconds(*process_tree(pid))


def udp_rcvbuf_errors() -> int:
    """Host-wide count of UDP datagrams dropped because a receive buffer was full."""
    lines = [
        ln.split()
        for ln in Path("/proc/net/snmp").read_text().splitlines()
        if ln.startswith("Udp:")
    ]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])
