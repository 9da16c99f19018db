"""What every containment mode provides."""

from __future__ import annotations

import os
import signal
import time
from abc import ABC, abstractmethod


class Unit(ABC):
    """The set of processes belonging to one execution."""

    poll_interval = 0.002  # seconds between emptiness checks while waiting on a cancel

    def __init__(self, unit_id: str) -> None:
        self.id = unit_id
        self.created = time.time()
        self.leader_pid: int | None = None
        self.kernel_limits: tuple[bool, bool] = (False, False)  # (memory, pids) enforced by the kernel

    @abstractmethod
    def wrap_script(self) -> str:
        """Shell lines the spawn wrapper runs before exec'ing the runner (joins the unit)."""

    def env(self) -> dict[str, str]:
        return {}

    @property
    def new_session(self) -> bool:
        return True

    def attach(self, pid: int) -> None:
        self.leader_pid = pid

    def joined(self, pid: int) -> bool:
        """Whether the spawned process has entered the unit (at once, where joining is implicit)."""
        return True

    @abstractmethod
    def pids(self) -> set[int]:
        """The live member processes now."""

    @abstractmethod
    def signal_all(self, sig: int) -> int:
        """Send sig to every member; return how many were signalled."""

    def kill_all(self) -> None:
        self.signal_all(signal.SIGKILL)

    def is_empty(self) -> bool:
        return not self.pids()

    def close(self) -> None:
        """Release the unit's resources once it is empty."""

    def limits(self, memory_bytes: int, max_processes: int) -> tuple[bool, bool]:
        """Apply kernel-enforced limits where the mode can; return (memory, pids) applied."""
        return (False, False)


class ContainmentMode(ABC):
    name: str

    def __init__(self, instance: str) -> None:
        self.instance = instance

    @abstractmethod
    def new_unit(self, unit_id: str) -> Unit: ...

    def close(self) -> None:
        """Release what the mode holds once every unit is closed."""

    @abstractmethod
    def reconcile(self) -> list[int]:
        """Kill what a previous supervisor of this instance left behind; return the pids."""


def send_signal(pid: int, sig: int, still_member) -> bool:
    """Signal pid through a pidfd, after checking membership on the pidfd's process.

    The pidfd pins the process: if the pid was reused between listing and signalling,
    the membership check fails on the new process, and the old one is never confused
    with it.
    """
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return False
    try:
        if not still_member(pid):
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except (ProcessLookupError, PermissionError, OSError):
        return False
    finally:
        os.close(fd)
