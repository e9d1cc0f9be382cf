"""CPU seconds by process kind on this machine, to show where a run's time goes: the
Temporal server, the Lull workers, Postgres, and this process (the ingest seam, the send
worker and the load). Read from /proc, so it needs Linux; elsewhere it reports nothing."""

from __future__ import annotations

import os
from pathlib import Path

KINDS = ("temporal server", "lull workers", "postgres", "bench + ingest + sends")


def _kind(pid: int, cmdline: str) -> str | None:
    if pid == os.getpid():
        return KINDS[3]
    if "temporal" in cmdline and "start-dev" in cmdline:
        return KINDS[0]
    if "cli worker" in cmdline:
        return KINDS[1]
    if "postgres" in cmdline:
        return KINDS[2]
    return None


def snapshot() -> dict[int, tuple[str, float]]:
    """pid → (kind, CPU seconds so far), for the processes of the kinds above."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        kind = _kind(int(entry.name), cmdline)
        if kind is not None:
            found[int(entry.name)] = (kind, (int(fields[11]) + int(fields[12])) / ticks)
    return found


def spent(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict:
    """CPU seconds each kind spent between two snapshots (a process that ended between them
    is not counted: the bench keeps its processes for the whole run)."""
    totals = dict.fromkeys(KINDS, 0.0)
    for pid, (kind, seconds) in after.items():
        totals[kind] += seconds - before.get(pid, (kind, 0.0))[1]
    return totals
