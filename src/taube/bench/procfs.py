"""What Linux's /proc says about processes on this machine: CPU time, RSS, who listens.

Used to report the server's CPU seconds per 1,000 messages and RSS per
connection, the load generator's own CPU use, and how busy each core was
(another process taking a core makes a run noisy). Every reader returns None
when the information is not there (another OS, another user's process, a
server on another machine) instead of failing the run.
"""

from __future__ import annotations

import contextlib
import os
import resource
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_LISTEN = "0A"


def raise_nofile_limit() -> int:
    """Raise this process's open-file limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return int(soft)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of all threads of ``pid`` so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    # fields[0] is the state (field 3 in proc(5)); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def affinity(pid: int) -> set[int] | None:
    """The cores ``pid`` may run on (``taskset -c``), from Cpus_allowed_list."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            cores: set[int] = set()
            for part in line.split(":", 1)[1].strip().split(","):
                low, _, high = part.partition("-")
                cores.update(range(int(low), int(high or low) + 1))
            return cores
    return None


def rss_kb(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB (VmRSS)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


@dataclass(frozen=True, slots=True)
class CoreTimes:
    """One core's ticks since boot: busy (not idle), total, and spent in processes.

    ``in_processes`` is user + nice + system time: what processes are charged
    for. Interrupt and softirq time (the kernel's network work, among others)
    is busy but charged to no process.
    """

    busy: int
    total: int
    in_processes: int


def core_times() -> dict[int, CoreTimes]:
    """Per core, from /proc/stat."""
    times: dict[int, CoreTimes] = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return times
    for line in lines:
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(v) for v in rest.split()]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
            total = sum(ticks[:8])  # guest time is already counted in user
            times[int(name[3:])] = CoreTimes(total - idle, total, ticks[0] + ticks[1] + ticks[2])
    return times


def seconds_in_processes(before: dict[int, CoreTimes], after: dict[int, CoreTimes]) -> float:
    """CPU seconds that all processes together were charged between two samples."""
    ticks = sum(a.in_processes - before[c].in_processes for c, a in after.items() if c in before)
    return ticks / _TICKS


def busy_percent(before: dict[int, CoreTimes], after: dict[int, CoreTimes]) -> dict[int, float]:
    """Per core, the share of time it was busy between two ``core_times()`` samples."""
    busy: dict[int, float] = {}
    for core, a in after.items():
        b = before.get(core, a)
        busy[core] = (
            round(100.0 * (a.busy - b.busy) / (a.total - b.total), 1) if a.total > b.total else 0.0
        )
    return busy


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == _LISTEN and int(local.rpartition(":")[2], 16) == port:
                inodes.add(inode)
    return inodes


def listening_pid(port: int) -> int | None:
    """The process (of this user) that listens on TCP ``port``, found by socket inode."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return int(entry.name)
        except OSError:
            continue
    return None
