"""Process-group containment, for hosts without writable cgroups.

A unit is: the runner's own session and process group, every descendant of the runner,
every process carrying the unit's environment marker, every process seen as a member
before (pid + creation time), and orphans re-parented to this supervisor (it is a child
subreaper) after the unit started. A process that clears its environment, leaves the
session and is re-parented elsewhere than here can escape; cgroup mode has no such gap.
"""

from __future__ import annotations

import ctypes
import os
import time

import psutil

from agent_runner.protocol import MARKER_ENV

from .base import ContainmentMode, Unit, send_signal

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphans of our descendants re-parent to us instead of init, where we can see them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        return False


def _marker_of(proc: psutil.Process) -> str | None:
    try:
        return proc.environ().get(MARKER_ENV)
    except (psutil.Error, OSError):
        return None


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


class PgroupUnit(Unit):
    poll_interval = 0.01  # each check scans the whole process table

    def __init__(self, unit_id: str, mode: "PgroupMode") -> None:
        super().__init__(unit_id)
        self._mode = mode
        self.marker = f"{mode.instance}:{unit_id}"
        self._known: dict[int, float] = {}  # pid -> create_time of members seen so far

    def wrap_script(self) -> str:
        return ":"

    def env(self) -> dict[str, str]:
        return {MARKER_ENV: self.marker}

    def attach(self, pid: int) -> None:
        super().attach(pid)
        try:
            self._known[pid] = psutil.Process(pid).create_time()
        except psutil.Error:
            pass

    def _scan(self) -> dict[int, psutil.Process]:
        """Find the members in the live process table."""
        procs, children, sids = self._mode.table()
        me = os.getpid()
        others = self._mode.leaders_except(self)
        members: dict[int, psutil.Process] = {}
        for pid, ctime in self._known.items():
            proc = procs.get(pid)
            if proc is not None and abs(proc.info["create_time"] - ctime) < 0.01:
                members[pid] = proc
        for pid, proc in procs.items():
            if pid in members or pid == me:
                continue
            if proc.info["create_time"] + 1 < self.created:
                continue  # older than the unit: cannot belong to it
            if self.leader_pid and sids.get(pid) == self.leader_pid:
                members[pid] = proc
            elif proc.info["ppid"] == me and pid not in others and pid != self.leader_pid:
                if self._mode.claim_orphan(pid, self):
                    members[pid] = proc
            elif self._mode.marker_of(proc) == self.marker:
                members[pid] = proc
        # Descendants of any member are members.
        stack = list(members)
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in members and child in procs:
                    members[child] = procs[child]
                    stack.append(child)
        for pid, proc in members.items():
            self._known[pid] = proc.info["create_time"]
            if proc.info["ppid"] == me and pid != self.leader_pid:
                self._mode.adopted.add(pid)
        return members

    def pids(self) -> set[int]:
        return {pid for pid, p in self._scan().items() if _alive(p)}

    def signal_all(self, sig: int) -> int:
        members = self._scan()

        def still(pid: int) -> bool:
            proc = members[pid]
            try:
                return proc.is_running()  # compares creation time: never a reused pid
            except psutil.Error:
                return False

        return sum(send_signal(pid, sig, still) for pid in members)

    def is_empty(self) -> bool:
        return not self.pids()

    def close(self) -> None:
        self._mode.forget(self)


def _alive(proc: psutil.Process) -> bool:
    return proc.info.get("status") != psutil.STATUS_ZOMBIE


class PgroupMode(ContainmentMode):
    name = "pgroup"

    def __init__(self, instance: str) -> None:
        super().__init__(instance)
        self.subreaper = become_subreaper()
        self.units: dict[str, PgroupUnit] = {}
        self.adopted: set[int] = set()  # orphans re-parented to us, ours to reap
        self._orphan_owner: dict[int, str] = {}
        self._table: tuple[float, dict, dict, dict] | None = None
        self._markers: dict[tuple[int, float], str | None] = {}

    TABLE_TTL_S = 0.005  # units asking within this share one scan (the sampler asks for all)

    def table(self) -> tuple[dict[int, psutil.Process], dict[int, list[int]], dict[int, int | None]]:
        """The process table: processes by pid, children by parent, session by pid."""
        cached = self._table
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.TABLE_TTL_S:
            return cached[1], cached[2], cached[3]
        procs: dict[int, psutil.Process] = {}
        children: dict[int, list[int]] = {}
        sids: dict[int, int | None] = {}
        for proc in psutil.process_iter(["pid", "ppid", "create_time", "status"]):
            procs[proc.pid] = proc
            children.setdefault(proc.info["ppid"], []).append(proc.pid)
            sids[proc.pid] = _sid(proc.pid)
        live = {(pid, p.info["create_time"]) for pid, p in procs.items()}
        self._markers = {k: v for k, v in self._markers.items() if k in live}
        self._table = (now, procs, children, sids)
        return procs, children, sids

    def marker_of(self, proc: psutil.Process) -> str | None:
        """A process's marker, read once per process (its initial environment)."""
        key = (proc.pid, proc.info["create_time"])
        if key not in self._markers:
            self._markers[key] = _marker_of(proc)
        return self._markers[key]

    def new_unit(self, unit_id: str) -> Unit:
        unit = PgroupUnit(unit_id, self)
        self.units[unit_id] = unit
        return unit

    def forget(self, unit: PgroupUnit) -> None:
        self.units.pop(unit.id, None)

    def leaders_except(self, unit: Unit) -> set[int]:
        return {u.leader_pid for u in self.units.values() if u is not unit and u.leader_pid}

    def claim_orphan(self, pid: int, unit: PgroupUnit) -> bool:
        """An orphan belongs to the first unit that saw it, or to the newest unit older than it."""
        owner = self._orphan_owner.get(pid)
        if owner is not None:
            return owner == unit.id
        try:
            started = psutil.Process(pid).create_time()
        except psutil.Error:
            return False
        candidates = [u for u in self.units.values() if u.created <= started + 1]
        best = max(candidates, key=lambda u: u.created, default=None)
        if best is unit or best is None:
            self._orphan_owner[pid] = unit.id
            return True
        return False

    def reconcile(self) -> list[int]:
        prefix = f"{self.instance}:"
        victims = []
        for proc in psutil.process_iter(["pid"]):
            marker = _marker_of(proc)
            if marker and marker.startswith(prefix) and proc.pid != os.getpid():
                victims.append(proc)
        for proc in victims:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(victims, timeout=2)
        return [p.pid for p in victims]
