"""Starting runner processes inside their containment unit, as the runner user."""

from __future__ import annotations

import asyncio
import os
import pwd
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .containment import Unit


@dataclass
class RunnerIdentity:
    """Who runners run as. uid None: as the supervisor's own user."""

    uid: int | None = None
    gid: int | None = None
    name: str = ""

    @classmethod
    def resolve(cls, runner_user: str) -> "RunnerIdentity":
        if os.geteuid() != 0 or runner_user in ("", "root"):
            return cls()
        try:
            entry = pwd.getpwnam(runner_user)
        except KeyError:
            raise RuntimeError(f"KAKOCLAW_RUNNER_USER={runner_user!r}: no such user") from None
        return cls(entry.pw_uid, entry.pw_gid, runner_user)

    def drop_argv(self) -> list[str]:
        if self.uid is None:
            return []
        # setpriv runs after the wrapper joined the cgroup as root: joining needs write
        # access to the common ancestor's cgroup.procs, which the runner user lacks.
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--no-new-privs", "--"]


def runner_env(extra: dict[str, str]) -> dict[str, str]:
    """The runner's whole environment: nothing of the supervisor's secrets."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(extra)
    return env


@dataclass
class RunnerProcess:
    proc: asyncio.subprocess.Process
    unit: Unit
    spawned_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid


async def spawn_runner(
    unit: Unit,
    identity: RunnerIdentity,
    *,
    cwd: Path,
    memory_rlimit: int = 0,
    runner_args: str = "-m agent_runner",
    nice: int = 0,
    python: str = sys.executable,
) -> RunnerProcess:
    """Start `python -m agent_runner` in unit; it waits on stdin for its job spec."""
    script = [unit.wrap_script()]
    if nice and unit.new_session:
        # A new session is a new scheduler autogroup where autogroups are on, and nice
        # only ranks processes within one: the group itself must be niced too.
        script.append(f"echo {nice} > /proc/self/autogroup 2>/dev/null")
    if memory_rlimit:
        script.append(f"ulimit -v {max(1, memory_rlimit // 1024)} || exit 126")
    script.append('exec "$@"')
    niced = ["nice", "-n", str(nice)] if nice else []
    argv = ["/bin/sh", "-c", "; ".join(script), "kakoclaw-runner", *niced, *identity.drop_argv(), python,
            *shlex.split(runner_args)]
    env = runner_env({**unit.env(), "HOME": str(cwd)})
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(cwd),
        env=env,
        start_new_session=unit.new_session,
        limit=2**16,
    )
    unit.attach(proc.pid)
    return RunnerProcess(proc=proc, unit=unit)

