"""One execution: its record, its state machine, and the request that made it."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

from agent_runner.protocol import Limits, ModelSettings

from .reply import Reply
from .states import State, check_transition


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class ExecutionRequest:
    session_id: str
    user: str
    messages: list[dict]
    model: ModelSettings = field(default_factory=ModelSettings)
    tools: list[str] = field(default_factory=list)
    limits: Limits | None = None
    workspace: str | None = None
    priority: int = 0
    user_message: str | None = None  # echoed to the session's subscribers when it starts
    user_id: int | None = None


@dataclass
class StopRequest:
    """Why the engine is ending an execution, and how."""

    reason: str  # cancel | timeout | limit | shutdown | eof
    grace: float
    force: bool = False
    message: str = ""
    requested_at: float = field(default_factory=time.monotonic)


@dataclass
class CancelOutcome:
    id: str
    state: str
    signal: str | None
    latency_ms: float | None

    def as_dict(self) -> dict:
        return {"id": self.id, "state": self.state, "signal": self.signal, "latency_ms": self.latency_ms}


class Execution:
    def __init__(self, execution_id: str, request: ExecutionRequest) -> None:
        self.id = execution_id
        self.request = request
        self.session_id = request.session_id
        self.user = request.user
        self.state = State.QUEUED
        self.pid: int | None = None
        self.created_at = time.time()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.exit_code: int | None = None
        self.signal: str | None = None  # the signal that ended it (SIGTERM/SIGKILL/SIGSEGV...)
        self.cancel_latency_ms: float | None = None
        self.error: str | None = None
        self.stderr_tail: deque[bytes] = deque()
        self.stderr_bytes = 0
        self.output_bytes = 0
        self.containment: str = ""
        self.unit = None
        self.reply = Reply()
        self.stop: StopRequest | None = None
        self.stop_event = asyncio.Event()
        self.done = asyncio.Event()

    # -- state --------------------------------------------------------------------------

    def set_state(self, new: State) -> None:
        check_transition(self.state, new)
        self.state = new
        if new.terminal:
            self.ended_at = time.time()

    @property
    def live(self) -> bool:
        return not self.state.terminal

    def request_stop(self, stop: StopRequest) -> bool:
        """Ask the driver to end the execution; the first request decides the outcome,
        except that a forced kill may upgrade a graceful one."""
        if not self.live:
            return False
        if self.stop is None:
            self.stop = stop
        elif stop.force and not self.stop.force:
            self.stop.force = True
        self.stop_event.set()
        return True

    def outcome(self) -> CancelOutcome:
        return CancelOutcome(self.id, self.state.value, self.signal, self.cancel_latency_ms)

    # -- stderr, kept bounded -----------------------------------------------------------

    def add_stderr(self, chunk: bytes, limit: int) -> None:
        self.stderr_tail.append(chunk)
        self.stderr_bytes += len(chunk)
        while self.stderr_bytes > limit and len(self.stderr_tail) > 1:
            self.stderr_bytes -= len(self.stderr_tail.popleft())

    def stderr_text(self) -> str:
        return b"".join(self.stderr_tail).decode("utf-8", "replace")[-16384:]

    # -- views --------------------------------------------------------------------------

    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def record(self) -> dict:
        """The execution record as stored and served."""
        return {
            "id": self.id,
            "session_id": self.session_id,
            "user": self.user,
            "state": self.state.value,
            "pid": self.pid,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration_s": None if (d := self.duration_s()) is None else round(d, 3),
            "exit_code": self.exit_code,
            "signal": self.signal,
            "cancel_latency_ms": self.cancel_latency_ms,
            "error": self.error,
            "containment": self.containment,
        }
