"""The live process table, as psutil sees it, grouped by execution."""

from __future__ import annotations

import os
import threading
from typing import Callable, Iterable

import psutil

from agent_runner.protocol import MARKER_ENV

from .execution import Execution, iso

_ATTRS = ["pid", "ppid", "name", "cmdline", "status", "create_time"]


def format_duration(seconds: float | None) -> str:
    return "0s" if seconds is None else f"{seconds:.1f}s"


class ProcTable:
    def __init__(self) -> None:
        # Process objects are kept between calls so cpu_percent measures since the last look.
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._lock = threading.Lock()

    def _process(self, pid: int) -> psutil.Process | None:
        try:
            proc = psutil.Process(pid)
            key = (pid, proc.create_time())
        except psutil.Error:
            return None
        with self._lock:
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
                info = proc.as_dict(attrs=_ATTRS)
                info["cpu_percent"] = proc.cpu_percent(None)
                info["rss_bytes"] = proc.memory_info().rss
        except psutil.Error:
            return None
        info["cmdline"] = " ".join(info.get("cmdline") or [])
        return info

    def processes_of(self, ex: Execution) -> list[dict]:
        if ex.unit is None:
            return []
        rows = [row for pid in sorted(ex.unit.pids()) if (row := self.describe(pid)) is not None]
        # The runner first, then its tree in pid order.
        rows.sort(key=lambda r: (r["pid"] != ex.pid, r["pid"]))
        return rows

    def view(self, executions: Iterable[Execution], position: Callable[[Execution], int | None]) -> list[dict]:
        out = []
        for ex in executions:
            procs = self.processes_of(ex)
            out.append(
                {
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
                }
            )
        self._forget_dead()
        return out

    def usage(self, executions: Iterable[Execution]) -> dict[str, tuple[int, int]]:
        """execution id -> (process count, total RSS bytes)."""
        out = {}
        for ex in executions:
            if ex.unit is None:
                continue
            pids = ex.unit.pids()
            rss = 0
            for pid in pids:
                try:
                    rss += psutil.Process(pid).memory_info().rss
                except psutil.Error:
                    pass
            out[ex.id] = (len(pids), rss)
        return out

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

    def _forget_dead(self) -> None:
        with self._lock:
            for key in [k for k, p in self._procs.items() if not p.is_running()]:
                del self._procs[key]
