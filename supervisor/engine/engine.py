"""The execution engine: admits, spawns, streams, limits, cancels and reaps executions.

Every execution is driven by one task owned by the engine's task group; it ends only
when its containment unit is empty.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import signal
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from agent_runner.protocol import JobSpec, Limits

from ..config import Settings
from ..hub import Hub
from .admission import Admission
from .containment import Unit, select_containment
from .execution import CancelOutcome, Execution, ExecutionRequest, StopRequest
from .framing import LineFramer
from .pool import RunnerPool
from .proctable import ProcTable
from .spawn import RunnerIdentity, RunnerProcess
from .states import State

log = logging.getLogger("kakoclaw.engine")

EOF_GRACE_S = 2.0  # a runner that closed stdout gets this long to exit
STDERR_KEEP = 64 * 1024
FINISHED_KEPT = 500  # finished executions kept in memory for get()/cancel answers
CANCELED_BY_USER = "Execution canceled by user"


class EngineClosed(RuntimeError):
    pass


class Observer(Protocol):
    """Told about executions as they change (the web layer persists them)."""

    def on_state(self, ex: Execution) -> None: ...
    def on_finished(self, ex: Execution) -> None: ...


class _NullObserver:
    def on_state(self, ex: Execution) -> None:
        pass

    def on_finished(self, ex: Execution) -> None:
        pass


def instance_id(settings: Settings) -> str:
    """Names this supervisor's units, so two supervisors on a host never touch each other's."""
    return hashlib.sha1(str(settings.data_dir.resolve()).encode()).hexdigest()[:10]


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _use_pidfd_child_watcher():
    """Python 3.11 waits for each child in a thread of its own; starting hundreds of
    threads stalls the event loop for seconds. A pidfd per child, watched by the loop
    itself, costs nothing (3.12 does this by default). Returns the watcher it replaced."""
    if sys.version_info >= (3, 12) or not hasattr(asyncio, "PidfdChildWatcher"):
        return None
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return None
    previous = asyncio.get_child_watcher()
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
    return previous


class Engine:
    def __init__(self, settings: Settings, hub: Hub, observer: Observer | None = None) -> None:
        self.settings = settings
        self.hub = hub
        self.observer: Observer = observer or _NullObserver()
        self.instance = instance_id(settings)
        selection = select_containment(settings.containment, self.instance)
        self.containment = selection.mode
        self.containment_reason = selection.reason
        self.identity = RunnerIdentity.resolve(settings.runner_user)
        self.workspaces = settings.data_dir / "workspaces"
        self.admission = Admission(settings.max_concurrent, settings.max_concurrent_per_user, settings.max_queue)
        self.live: dict[str, Execution] = {}
        self.finished: OrderedDict[str, Execution] = OrderedDict()
        self.proctable = ProcTable()
        self.pool = RunnerPool(self, settings.runner_pool_size)
        self.reconciled: list[int] = []
        self._tg: asyncio.TaskGroup | None = None
        self._closing = asyncio.Event()
        self._units = 0
        self._previous_watcher = None

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> "Engine":
        self.reconciled = await asyncio.to_thread(self.containment.reconcile)
        if self.reconciled:
            log.warning("reconciled: killed %d process(es) left by a previous run: %s", len(self.reconciled), self.reconciled)
        self.workspaces.mkdir(parents=True, exist_ok=True)
        if self.identity.uid is not None:
            # The runner user may pass through the data dir to its workspace, never list or
            # read it: the database and the JWT secret are 0600 files owned by the supervisor.
            os.chmod(self.settings.data_dir, 0o711)
        os.chmod(self.workspaces, 0o711)
        self._check_reachable()
        await self._check_runner_can_start()
        log.info("containment: %s (%s); runners run as %s", self.containment.name, self.containment_reason,
                 self.identity.name or f"uid {os.geteuid()}")
        self._previous_watcher = _use_pidfd_child_watcher()
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._tg.create_task(self._monitor(), name="engine-monitor")
        self._tg.create_task(self.pool.run(), name="runner-pool")
        return self

    def _check_reachable(self) -> None:
        if self.identity.uid is None:
            return
        for part in [self.workspaces, *self.workspaces.parents]:
            if not os.stat(part).st_mode & 0o001:
                raise RuntimeError(
                    f"the runner user {self.identity.name!r} cannot reach its workspaces: {part} is not "
                    f"traversable by others (chmod o+x {part}, or choose another KAKOCLAW_STORAGE_PATH)"
                )

    async def _check_runner_can_start(self) -> None:
        """Fail at start, clearly, if the runner user cannot run the runner at all."""
        if self.identity.uid is None:
            return
        proc = await asyncio.create_subprocess_exec(
            *self.identity.drop_argv(), sys.executable, "-c", "import agent_runner.loop",
            cwd=str(self.workspaces), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(
                f"the runner user {self.identity.name!r} cannot start the runner with {sys.executable}: "
                f"{err.decode(errors='replace').strip()[-500:]} -- make the installation readable by that "
                "user, or set KAKOCLAW_RUNNER_USER=root to run tools as root"
            )

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()
        assert self._tg is not None
        await self._tg.__aexit__(None, None, None)
        self.containment.close()
        if self._previous_watcher is not None:
            asyncio.set_child_watcher(self._previous_watcher)

    async def shutdown(self) -> None:
        """Cancel every execution (recorded as interrupted) and wait until all units are empty."""
        if self._closing.is_set():
            return
        self._closing.set()
        live = list(self.live.values())
        for ex in live:
            ex.request_stop(StopRequest("shutdown", self.settings.cancel_grace, message="supervisor shut down"))
        await asyncio.gather(*(ex.done.wait() for ex in live))
        await self.pool.close()

    # -- queries ------------------------------------------------------------------------

    def get(self, execution_id: str) -> Execution | None:
        return self.live.get(execution_id) or self.finished.get(execution_id)

    def for_session(self, session_id: str) -> list[Execution]:
        return [ex for ex in self.live.values() if ex.session_id == session_id]

    def running(self) -> list[Execution]:
        return list(self.live.values())

    def queue_position(self, ex: Execution) -> int | None:
        return self.admission.position(ex.id)

    async def active(self, executions: list[Execution] | None = None) -> list[dict]:
        """Live executions with their processes, from the live process table."""
        if not self.proctable.fresh():
            await asyncio.to_thread(self.proctable.refresh, self.running())
        return self.proctable.view(self.running() if executions is None else executions, self.queue_position)

    def orphans(self) -> list[dict]:
        """Processes of this instance that belong to no live execution."""
        idle = {pid for runner in self.pool.idle for pid in runner.unit.pids()}
        return self.proctable.orphans(self.containment, self.running(), idle)

    # -- submit and cancel ----------------------------------------------------------------

    def submit(self, request: ExecutionRequest) -> Execution:
        if self._closing.is_set() or self._tg is None:
            raise EngineClosed("the engine is shutting down")
        ex = Execution(f"{request.session_id}:{time.time_ns()}", request)
        ex.containment = self.containment.name
        admitted = self.admission.enqueue(ex.id, request.user, request.priority)  # may raise QueueFull
        self.live[ex.id] = ex
        self.hub.begin(ex.session_id, ex.id)
        if request.user_message is not None:
            self._publish(ex, {"type": "message", "role": "user", "content": request.user_message})
        self._notify(self.observer.on_state, ex)
        self._tg.create_task(self._drive(ex, admitted), name=f"execution {ex.id}")
        return ex

    async def cancel(
        self, execution_id: str, *, grace: float | None = None, force: bool = False, wait: bool = True
    ) -> CancelOutcome | None:
        ex = self.get(execution_id)
        if ex is None:
            return None
        grace = self.settings.cancel_grace if grace is None else max(0.0, grace)
        ex.request_stop(StopRequest("cancel", grace, force=force, message=CANCELED_BY_USER))
        if wait:
            await ex.done.wait()
        return ex.outcome()

    # -- driving one execution ------------------------------------------------------------

    def _publish(self, ex: Execution, event: dict) -> None:
        self.hub.publish(ex.session_id, ex.id, event)

    def _execution_event(self, ex: Execution, notify: bool = True, **extra: object) -> None:
        event: dict = {"type": "execution", "state": ex.state.value}
        if ex.pid is not None:
            event["pid"] = ex.pid
        event.update({k: v for k, v in extra.items() if v is not None})
        self._publish(ex, event)
        if notify:
            self._notify(self.observer.on_state, ex)

    def _notify(self, callback, ex: Execution) -> None:
        # The observer (persistence) failing must never take the engine down with it.
        try:
            callback(ex)
        except Exception:
            log.exception("observer failed on execution %s", ex.id)

    async def _drive(self, ex: Execution, admitted: asyncio.Future) -> None:
        runner: RunnerProcess | None = None
        try:
            if not admitted.done():
                self._execution_event(ex, position=self.admission.position(ex.id))
                stopped = asyncio.ensure_future(ex.stop_event.wait())
                try:
                    await asyncio.wait({admitted, stopped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopped.cancel()
                if ex.stop is not None:
                    self.admission.withdraw(ex.id)
                    ex.error = ex.stop.message
                    ex.cancel_latency_ms = round((time.monotonic() - ex.stop.requested_at) * 1000, 3)
                    ex.set_state(State.INTERRUPTED if ex.stop.reason == "shutdown" else State.CANCELED)
                    return
            ex.set_state(State.STARTING)
            runner = await self.pool.take()
            ex.unit, ex.pid, ex.started_at = runner.unit, runner.pid, time.time()
            spec = self._job_spec(ex)
            assert runner.proc.stdin is not None
            try:
                runner.proc.stdin.write(spec.to_line())
                await runner.proc.stdin.drain()
                runner.proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the runner died before reading: its exit status will tell
            ex.set_state(State.RUNNING)
            log.info("execution %s started session=%s user=%s pid=%s containment=%s",
                     ex.id, ex.session_id, ex.user, ex.pid, ex.containment)
            self._publish(ex, {"type": "stream_start"})
            self._execution_event(ex)
            await self._supervise(ex, runner)
        except Exception as exc:  # an engine bug must not leave processes or a hung client
            log.exception("execution %s failed in the engine", ex.id)
            if runner is not None:
                await self.empty_unit(runner.unit)
            ex.error = f"internal error: {type(exc).__name__}: {exc}"
            if ex.live:
                ex.state = State.FAILED
                ex.ended_at = time.time()
        finally:
            self.admission.release(ex.id)
            if runner is not None:  # a runner serves one execution only: never back to the pool
                self._reap_orphans()
            try:
                self._finish(ex)
            except Exception:
                log.exception("finishing execution %s failed", ex.id)
                ex.done.set()

    def _job_spec(self, ex: Execution) -> JobSpec:
        req = ex.request
        s = self.settings
        limits = req.limits or Limits(
            wall_time_s=s.runner_wall_time,
            memory_bytes=s.runner_memory,
            output_bytes=s.runner_output_bytes,
            exec_timeout_s=s.exec_timeout,
        )
        workspace = req.workspace or str(self.workspace_for(ex.session_id))
        return JobSpec(ex.id, ex.session_id, req.messages, req.model, req.tools, limits, workspace)

    def workspace_for(self, session_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", session_id)[:60]
        digest = hashlib.sha1(session_id.encode()).hexdigest()[:8]
        path = self.workspaces / f"{safe}-{digest}"
        if not path.exists():
            path.mkdir(mode=0o700, parents=True)
            if self.identity.uid is not None:
                os.chown(path, self.identity.uid, self.identity.gid or -1)
        return path

    async def _supervise(self, ex: Execution, runner: RunnerProcess) -> None:
        proc, unit = runner.proc, runner.unit
        loop = asyncio.get_running_loop()
        wall = (ex.request.limits.wall_time_s if ex.request.limits else self.settings.runner_wall_time)
        timer = loop.call_later(
            wall, ex.request_stop,
            StopRequest("timeout", self.settings.cancel_grace, message=f"wall-clock limit of {wall:g} s reached"),
        )
        try:
            async with asyncio.TaskGroup() as tg:
                reader = tg.create_task(self._pump_stdout(ex, proc.stdout))
                tg.create_task(self._pump_stderr(ex, proc.stderr))
                stopped = tg.create_task(ex.stop_event.wait())
                await asyncio.wait({reader, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if ex.stop is None:
                    exited = tg.create_task(proc.wait())
                    done, _ = await asyncio.wait({exited, stopped}, timeout=EOF_GRACE_S,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if not done:
                        ex.request_stop(StopRequest("eof", 0.0, force=True,
                                                    message="runner closed its output but kept running; killed"))
                if ex.stop is not None:
                    sig = await self._stop_unit(ex, unit)
                else:
                    sig = None
                    await self.empty_unit(unit)  # leftovers of a finished run
                stopped.cancel()
                try:
                    await asyncio.wait_for(asyncio.shield(reader), 5.0)
                except asyncio.TimeoutError:
                    reader.cancel()  # something outside the unit holds the pipe
                await proc.wait()
        finally:
            timer.cancel()
            unit.close()
        self._classify(ex, proc.returncode, sig)

    async def _pump_stdout(self, ex: Execution, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        framer = LineFramer(self.settings.runner_line_limit)
        limit = (ex.request.limits.output_bytes if ex.request.limits else self.settings.runner_output_bytes)
        while chunk := await stream.read(64 * 1024):
            # read() does not yield while data is buffered: give subscribers a turn per chunk.
            await asyncio.sleep(0)
            ex.output_bytes += len(chunk)
            if ex.output_bytes > limit:
                if ex.stop is None:
                    ex.request_stop(StopRequest("limit", self.settings.cancel_grace,
                                                message=f"output limit of {limit} bytes exceeded"))
                continue  # keep draining so the runner never blocks; forward nothing more
            for event in framer.feed(chunk):
                for client_event in ex.reply.apply(event):
                    self._publish(ex, client_event)
        for event in framer.finish():
            for client_event in ex.reply.apply(event):
                self._publish(ex, client_event)

    async def _pump_stderr(self, ex: Execution, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        while chunk := await stream.read(64 * 1024):
            ex.add_stderr(chunk, STDERR_KEEP)

    async def _stop_unit(self, ex: Execution, unit: Unit) -> str | None:
        """SIGTERM every process, wait up to the grace, SIGKILL what is left; done when empty."""
        stop = ex.stop
        assert stop is not None
        if ex.state in (State.RUNNING, State.STARTING):
            ex.set_state(State.CANCELING)
            self._execution_event(ex)
        used: str | None = None
        if not stop.force:
            if unit.signal_all(signal.SIGTERM):
                used = "SIGTERM"
            deadline = stop.requested_at + stop.grace
            while not unit.is_empty() and not stop.force and time.monotonic() < deadline:
                # Poll briskly at first (a cooperative runner is gone in tens of ms), then less.
                elapsed = time.monotonic() - stop.requested_at
                pause = unit.poll_interval if elapsed < 0.5 else 5 * unit.poll_interval
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        if not unit.is_empty():
            used = "SIGKILL"
            await self.empty_unit(unit)
        ex.cancel_latency_ms = round((time.monotonic() - stop.requested_at) * 1000, 3)
        return used

    async def empty_unit(self, unit: Unit) -> None:
        """SIGKILL until the unit is empty (a fork loop may add members between kills)."""
        pause = 0.002
        deadline = time.monotonic() + 30
        while not unit.is_empty():
            unit.kill_all()
            if time.monotonic() > deadline:
                log.error("unit %s still not empty after 30 s of SIGKILL: %s", unit.id, unit.pids())
                break
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.05)
        self._reap_orphans()

    def _classify(self, ex: Execution, returncode: int | None, sig: str | None) -> None:
        ex.exit_code = returncode if returncode is not None and returncode >= 0 else None
        stop = ex.stop
        reply = ex.reply
        if stop is not None:
            ex.signal = sig or (_signame(-returncode) if returncode is not None and returncode < 0 else None)
            ex.error = stop.message
            state = {
                "cancel": State.KILLED if sig == "SIGKILL" else State.CANCELED,
                "timeout": State.TIMED_OUT,
                "shutdown": State.INTERRUPTED,
            }.get(stop.reason, State.FAILED)
        elif returncode == 0 and reply.final is not None:
            state = State.COMPLETED
        else:
            state = State.FAILED
            if returncode is not None and returncode < 0:
                ex.signal = _signame(-returncode)
                ex.error = f"runner died from {ex.signal}"
            elif returncode == 0:
                ex.error = "runner exited without a final message"
            else:
                ex.error = f"runner exited with status {returncode}"
            if reply.errors:
                ex.error += f": {reply.errors[-1]}"
            elif not reply.text and not ex.stderr_bytes and returncode not in (None, 0):
                ex.error += " and no output"
        ex.set_state(state)

    def _finish(self, ex: Execution) -> None:
        """Persist first, then tell subscribers: history never lags the stream's end."""
        if ex.ended_at is None:
            ex.ended_at = time.time()
        if ex.unit is not None:
            ex.unit.close()
        self.live.pop(ex.id, None)
        self.finished[ex.id] = ex
        while len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)
        self._notify(self.observer.on_finished, ex)
        self._execution_event(ex, notify=False, exit_code=ex.exit_code, signal=ex.signal, error=ex.error)
        end: dict = {"type": "stream_end", "content": ex.reply.content, "state": ex.state.value}
        if ex.state is not State.COMPLETED:
            end["error"] = ex.error or ex.state.value
        if ex.stop is not None and ex.stop.reason == "cancel":
            end["canceled"] = True
        self._publish(ex, end)
        self._publish(ex, {"type": "ready"})
        self.hub.end(ex.session_id, ex.id)
        ex.done.set()
        log.info(
            "execution %s session=%s user=%s state=%s exit_code=%s signal=%s cancel_latency_ms=%s",
            ex.id, ex.session_id, ex.user, ex.state.value, ex.exit_code, ex.signal, ex.cancel_latency_ms,
        )

    # -- background care ------------------------------------------------------------------

    def _reap_orphans(self) -> None:
        adopted = getattr(self.containment, "adopted", None)
        if not adopted:
            return
        for pid in list(adopted):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                adopted.discard(pid)
                continue
            if done:
                adopted.discard(pid)

    async def _monitor(self) -> None:
        """Samples the process table; enforces memory and process-count limits; reaps
        adopted orphans; forgets old events."""
        s = self.settings
        tick = 0
        while not self._closing.is_set():
            try:
                await asyncio.wait_for(self._closing.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            tick += 1
            running = [ex for ex in self.live.values() if ex.state is State.RUNNING and ex.unit is not None]
            await asyncio.to_thread(self.proctable.refresh, list(self.live.values()))
            for ex in running:
                count, rss = self.proctable.usage(ex)
                if s.runner_max_processes and count > s.runner_max_processes:
                    ex.request_stop(StopRequest("limit", 0.0, force=True,
                                                message=f"process limit of {s.runner_max_processes} exceeded ({count})"))
                elif s.runner_memory and rss > s.runner_memory:
                    ex.request_stop(StopRequest("limit", 0.0, force=True,
                                                message=f"memory limit of {s.runner_memory} bytes exceeded ({rss})"))
            self._reap_orphans()
            if tick % 10 == 0:
                self.hub.gc()

    def new_unit(self) -> Unit:
        self._units += 1
        unit = self.containment.new_unit(f"u{os.getpid()}-{self._units}-{time.monotonic_ns() % 10**9}")
        unit.kernel_limits = unit.limits(self.settings.runner_memory, self.settings.runner_max_processes)
        return unit
