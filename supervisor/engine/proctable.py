"""The live process table, as psutil sees it, grouped by execution.

One sampler pass (off the event loop, once a second) reads every execution's
processes; /active, `kakoclaw ps` and the limit monitor all use its latest snapshot,
so asking costs no scan. A snapshot older than MAX_AGE_S is refreshed before use.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import psutil

from agent_runner.protocol import MARKER_ENV

from .execution import Execution, iso

MAX_AGE_S = 1.5


def format_duration(seconds: float | None) -> str:
    return "0s" if seconds is None else f"{seconds:.1f}s"


@dataclass
class Snapshot:
    taken: float = 0.0  # time.monotonic()
    processes: dict[str, list[dict]] = field(default_factory=dict)  # execution id -> rows


class ProcTable:
    def __init__(self) -> None:
        # Process objects are kept between passes so cpu_percent measures since the last pass.
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._lock = threading.Lock()
        self.snapshot = Snapshot()

    def _process(self, pid: int) -> psutil.Process | None:
        try:
            proc = psutil.Process(pid)
            key = (pid, proc.create_time())
        except psutil.Error:
            return None
        cached = self._procs.get(key)
        if cached is None:
            cached = self._procs[key] = proc
        return cached

    def describe(self, pid: int) -> dict | None:
        proc = self._process(pid)
        if proc is None:
            return None
        try:
            with proc.oneshot():
                info = {
                    "pid": pid,
                    "ppid": proc.ppid(),
                    "name": proc.name(),
                    "cmdline": " ".join(proc.cmdline()),
                    "status": proc.status(),
                    "create_time": proc.create_time(),
                    "cpu_percent": proc.cpu_percent(None),
                    "rss_bytes": proc.memory_info().rss,
                }
        except psutil.Error:
            return None
        return info

    def refresh(self, executions: Iterable[Execution]) -> Snapshot:
        """One pass over every execution's processes (blocking: run it in a thread)."""
        with self._lock:
            seen: set[tuple[int, float]] = set()
            processes: dict[str, list[dict]] = {}
            for ex in list(executions):
                if ex.unit is None:
                    continue
                rows = [row for pid in sorted(ex.unit.pids()) if (row := self.describe(pid)) is not None]
                rows.sort(key=lambda r: (r["pid"] != ex.pid, r["pid"]))  # the runner first
                seen.update((r["pid"], r["create_time"]) for r in rows)
                processes[ex.id] = rows
            for key in [k for k in self._procs if k not in seen]:
                del self._procs[key]
            self.snapshot = Snapshot(time.monotonic(), processes)
            return self.snapshot

    def fresh(self) -> bool:
        return time.monotonic() - self.snapshot.taken <= MAX_AGE_S

    def view(self, executions: Iterable[Execution], position: Callable[[Execution], int | None]) -> list[dict]:
        """Rows of the original's /active (id, session_id, started_at, duration first),
        then the process-table fields, from the latest snapshot."""
        snap = self.snapshot
        out = []
        for ex in executions:
            procs = snap.processes.get(ex.id, [])
            out.append({
                "id": ex.id,
                "session_id": ex.session_id,
                "started_at": iso(ex.started_at or ex.created_at),
                "duration": format_duration(ex.duration_s()),
                "state": ex.state.value,
                "user": ex.user,
                "pid": ex.pid,
                "queue_position": position(ex),
                "containment": ex.containment,
                "cpu_percent": round(sum(p["cpu_percent"] for p in procs), 1),
                "rss_bytes": sum(p["rss_bytes"] for p in procs),
                "processes": procs,
            })
        return out

    def usage(self, ex: Execution) -> tuple[int, int]:
        """(process count, total RSS bytes) of an execution, from the latest snapshot."""
        procs = self.snapshot.processes.get(ex.id, [])
        return len(procs), sum(p["rss_bytes"] for p in procs)

    def orphans(self, containment, live: Iterable[Execution], exclude: set[int]) -> list[dict]:
        """Processes carrying this instance's marker, or in its cgroups, owned by no live execution."""
        owned: set[int] = set()
        for ex in live:
            if ex.unit is not None:
                owned |= ex.unit.pids()
        candidates: set[int] = set()
        parent = getattr(containment, "parent", None)
        if parent is not None:
            for procs in parent.glob("*/cgroup.procs"):
                try:
                    candidates |= {int(x) for x in procs.read_text().split()}
                except (OSError, ValueError):
                    pass
        else:
            prefix = f"{containment.instance}:"
            for proc in psutil.process_iter(["pid"]):
                try:
                    if proc.environ().get(MARKER_ENV, "").startswith(prefix):
                        candidates.add(proc.pid)
                except (psutil.Error, OSError):
                    pass
        return [row for pid in sorted(candidates - owned - exclude - {os.getpid()}) if (row := self.describe(pid))]
