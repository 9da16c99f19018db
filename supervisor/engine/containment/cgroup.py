"""cgroup v2 containment: one directory per unit, emptied atomically by cgroup.kill."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from .base import ContainmentMode, Unit, send_signal


def find_cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> Path | None:
    """The unified hierarchy's mount point (e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified)."""
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split(" ")[4])
    return None


def own_cgroup() -> str:
    """This process's cgroup v2 path relative to the mount ('/' at the root)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"


def _write(path: Path, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


class CgroupUnit(Unit):
    def __init__(self, unit_id: str, path: Path, mount: Path) -> None:
        super().__init__(unit_id)
        self.path = path
        self._rel = "/" + str(path.relative_to(mount))
        path.mkdir(mode=0o755)

    def wrap_script(self) -> str:
        # The wrapper shell moves itself in before it execs the runner: nothing can fork first.
        return f'echo $$ > "{self.path}/cgroup.procs" || exit 126'

    def limits(self, memory_bytes: int, max_processes: int) -> tuple[bool, bool]:
        mem = pids = False
        if memory_bytes and (self.path / "memory.max").exists():
            try:
                _write(self.path / "memory.max", str(memory_bytes))
                _write(self.path / "memory.swap.max", "0") if (self.path / "memory.swap.max").exists() else None
                mem = True
            except OSError:
                pass
        if max_processes and (self.path / "pids.max").exists():
            try:
                _write(self.path / "pids.max", str(max_processes))
                pids = True
            except OSError:
                pass
        return mem, pids

    def joined(self, pid: int) -> bool:
        return pid in self.pids()

    def _member(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cgroup") as fh:
                return any(line.startswith("0::") and line[3:].strip() == self._rel for line in fh)
        except OSError:
            return False

    def pids(self) -> set[int]:
        try:
            return {int(x) for x in (self.path / "cgroup.procs").read_text().split()}
        except (OSError, ValueError):
            return set()

    def signal_all(self, sig: int) -> int:
        if sig == signal.SIGKILL:
            n = len(self.pids())
            self.kill_all()
            return n
        return sum(send_signal(pid, sig, self._member) for pid in self.pids())

    def kill_all(self) -> None:
        try:
            _write(self.path / "cgroup.kill", "1")
        except OSError:
            pass

    def is_empty(self) -> bool:
        try:
            for line in (self.path / "cgroup.events").read_text().splitlines():
                if line.startswith("populated "):
                    return line.split()[1] == "0"
        except OSError:
            return True
        return not self.pids()

    def close(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)


class CgroupMode(ContainmentMode):
    name = "cgroup"

    def __init__(self, instance: str) -> None:
        super().__init__(instance)
        mount = find_cgroup2_mount()
        assert mount is not None
        self.mount = mount
        self.parent = parent_dir(mount, instance)
        self.parent.mkdir(parents=True, exist_ok=True)
        self._enable_controllers()

    @staticmethod
    def probe(instance: str) -> tuple[bool, str]:
        mount = find_cgroup2_mount()
        if mount is None:
            return False, "no cgroup2 mount in /proc/self/mountinfo"
        parent = parent_dir(mount, instance)
        test = parent / f"probe-{os.getpid()}"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            test.mkdir()
        except OSError as exc:
            return False, f"cannot create cgroups under {parent}: {exc.strerror}"
        try:
            if not (test / "cgroup.kill").exists():
                return False, "kernel has no cgroup.kill (needs Linux 5.14+)"
            if not os.access(test / "cgroup.procs", os.W_OK):
                return False, f"{test}/cgroup.procs is not writable"
        finally:
            test.rmdir()
            try:
                parent.rmdir()  # only if empty; the mode itself creates it again
            except OSError:
                pass
        return True, f"cgroup v2 at {parent}"

    def _enable_controllers(self) -> None:
        # Best effort: memory.max and pids.max exist in units only where these are delegated.
        try:
            available = (self.parent / "cgroup.controllers").read_text().split()
            wanted = [c for c in ("memory", "pids") if c in available]
            if wanted:
                _write(self.parent / "cgroup.subtree_control", " ".join("+" + c for c in wanted))
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.parent.rmdir()  # only if empty: units left behind stay for the next start
        except OSError:
            pass

    def new_unit(self, unit_id: str) -> Unit:
        return CgroupUnit(unit_id, self.parent / unit_id, self.mount)

    def reconcile(self) -> list[int]:
        killed: list[int] = []
        for child in sorted(p for p in self.parent.iterdir() if p.is_dir()):
            unit = CgroupUnit.__new__(CgroupUnit)
            Unit.__init__(unit, child.name)
            unit.path, unit._rel = child, "/" + str(child.relative_to(self.mount))
            killed.extend(unit.pids())
            unit.kill_all()
            deadline = time.monotonic() + 2.0
            while not unit.is_empty() and time.monotonic() < deadline:
                time.sleep(0.01)
            unit.close()
        return killed


def parent_dir(mount: Path, instance: str) -> Path:
    return mount / own_cgroup().lstrip("/") / f"kakoclaw-{instance}"
