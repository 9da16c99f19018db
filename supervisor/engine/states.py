"""Execution states and the transitions between them."""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    CANCELING = "canceling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"  # ended by SIGTERM within the grace
    KILLED = "killed"  # needed SIGKILL
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"  # supervisor shutdown or crash

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({State.COMPLETED, State.FAILED, State.CANCELED, State.KILLED, State.TIMED_OUT, State.INTERRUPTED})

ALLOWED = {
    State.QUEUED: {State.STARTING, State.CANCELED, State.INTERRUPTED},
    State.STARTING: {State.RUNNING, State.CANCELING, State.FAILED, State.INTERRUPTED},
    State.RUNNING: {State.CANCELING, *TERMINAL},
    State.CANCELING: {State.CANCELED, State.KILLED, State.INTERRUPTED, State.TIMED_OUT, State.FAILED},
}


class TransitionError(RuntimeError):
    pass


def check_transition(old: State, new: State) -> None:
    if new not in ALLOWED.get(old, ()):
        raise TransitionError(f"execution cannot go from {old.value} to {new.value}")
