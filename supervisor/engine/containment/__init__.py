"""Containment units: one per execution, so that a cancel can end everything it started.

cgroup mode: a cgroup v2 directory per unit, joined by the runner before its first fork,
emptied atomically with cgroup.kill. pgroup mode (no writable cgroups): own session and
process group, an environment marker, descendant/orphan sweeps, the supervisor as
subreaper. `select_containment` picks one and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import ContainmentMode, Unit
from .cgroup import CgroupMode, find_cgroup2_mount
from .pgroup import PgroupMode


@dataclass
class Selection:
    mode: ContainmentMode
    reason: str


def select_containment(requested: str, instance: str) -> Selection:
    """requested: auto | cgroup | pgroup. Raises RuntimeError if cgroup is forced but unusable."""
    if requested in ("auto", "cgroup"):
        ok, why = CgroupMode.probe(instance)
        if ok:
            return Selection(CgroupMode(instance), why)
        if requested == "cgroup":
            raise RuntimeError(f"KAKOCLAW_CONTAINMENT=cgroup but cgroups are not usable: {why}")
        return Selection(PgroupMode(instance), f"cgroup v2 not usable ({why}); using process groups")
    if requested == "pgroup":
        return Selection(PgroupMode(instance), "process-group mode requested by configuration")
    raise ValueError(f"unknown containment mode {requested!r}")


__all__ = ["ContainmentMode", "Unit", "Selection", "select_containment", "find_cgroup2_mount"]
