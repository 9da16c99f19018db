"""A warm pool of idle runners: started ahead, each used for exactly one execution.

A pooled runner has done its imports and waits on stdin for its job spec, inside its
own containment unit, as the runner user: the same isolation as a runner started on
demand, minus the interpreter start-up on the critical path.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from .spawn import RunnerProcess, spawn_runner

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("kakoclaw.pool")


class RunnerPool:
    def __init__(self, engine: "Engine", size: int) -> None:
        self.engine = engine
        self.size = max(0, size)
        self.idle: deque[RunnerProcess] = deque()
        self._wanted = asyncio.Event()
        self._closed = False
        self.spawned = 0
        # Joining a cgroup takes a kernel-wide lock that every fork() also needs: with
        # hundreds of runners joining at once the supervisor's own forks stalled its event
        # loop for seconds. At most two runners are on their way into a unit at a time.
        self._joining = asyncio.Semaphore(2)
        self.hits = 0
        self.misses = 0

    async def spawn(self) -> RunnerProcess:
        async with self._joining:
            return await self._spawn_and_join()

    async def _spawn_and_join(self) -> RunnerProcess:
        engine = self.engine
        unit = engine.new_unit()
        memory_applied, _ = unit.kernel_limits
        try:
            runner = await spawn_runner(
                unit,
                engine.identity,
                cwd=engine.workspaces,
                # RLIMIT_AS is a backstop at twice the limit (address space exceeds RSS); the
                # monitor ends the execution when the unit's RSS passes the limit itself.
                memory_rlimit=0 if memory_applied else 2 * engine.settings.runner_memory,
                runner_args=engine.settings.runner_args,
                nice=engine.settings.runner_nice,
            )
        except BaseException:
            unit.close()
            raise
        self.spawned += 1
        deadline = asyncio.get_running_loop().time() + 5
        while not unit.joined(runner.pid) and runner.proc.returncode is None:
            if asyncio.get_running_loop().time() > deadline:
                break  # let the execution go on; its exit status will tell if it failed
            await asyncio.sleep(0.002)
        return runner

    async def take(self) -> RunnerProcess:
        while self.idle:
            runner = self.idle.popleft()
            self._wanted.set()
            if runner.proc.returncode is None:
                self.hits += 1
                return runner
            await self._dispose(runner)
        self.misses += 1
        self._wanted.set()
        return await self.spawn()

    async def run(self) -> None:
        """Keep `size` idle runners ready until closed."""
        if self.size == 0:
            return
        self._wanted.set()
        while not self._closed:
            await self._wanted.wait()
            self._wanted.clear()
            while not self._closed and len(self.idle) < self.size:
                try:
                    runner = await self.spawn()
                except Exception:
                    log.exception("could not start a pooled runner; retrying in 1 s")
                    await asyncio.sleep(1.0)
                    continue
                if self._closed:
                    await self._dispose(runner)
                    break
                self.idle.append(runner)

    async def _dispose(self, runner: RunnerProcess) -> None:
        runner.unit.kill_all()
        await self.engine.empty_unit(runner.unit)
        try:
            await asyncio.wait_for(runner.proc.wait(), 5)
        except asyncio.TimeoutError:
            pass
        runner.unit.close()

    async def close(self) -> None:
        self._closed = True
        self._wanted.set()
        while self.idle:
            await self._dispose(self.idle.popleft())

    def idle_memory(self) -> int:
        """RSS of the idle runners, in bytes (what the pool costs while nothing runs)."""
        import psutil

        total = 0
        for runner in self.idle:
            for pid in runner.unit.pids():
                try:
                    total += psutil.Process(pid).memory_info().rss
                except psutil.Error:
                    pass
        return total
