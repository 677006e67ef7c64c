"""Where the machine's CPU goes during a measurement: CPU seconds per service, read from
/proc before and after (Linux), each process counted under the service it descends from.

On a machine whose cores the detector alone can fill, every CPU second the rest of the path
spends (the worker's Python, Kafka, Postgres, the vision model) is a second the detector
does not get; the split says which part to make cheaper.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def snapshot() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far, its own and its waited-for children's)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        found[int(entry.name)] = (ppid, (utime + stime + cutime + cstime) / _TICKS)
    return found


def split(
    before: dict[int, tuple[int, float]],
    after: dict[int, tuple[int, float]],
    roots: dict[str, int],
) -> dict[str, float]:
    """CPU seconds spent between the snapshots per name of `roots` (a process counts
    under the nearest root it descends from), the rest under "other"."""
    by_pid = {pid: name for name, pid in roots.items()}

    def owner(pid: int) -> str:
        seen = 0
        while pid in after and seen < 64:
            if pid in by_pid:
                return by_pid[pid]
            pid, seen = after[pid][0], seen + 1
        return "other"

    spent: dict[str, float] = {name: 0.0 for name in (*roots, "other")}
    for pid, (_, cpu) in after.items():
        spent[owner(pid)] += cpu - before.get(pid, (0, 0.0))[1]
    return {name: round(seconds, 2) for name, seconds in spent.items()}
