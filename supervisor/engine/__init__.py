"""The execution engine: one contained runner process per execution."""

from .admission import QueueFull
from .engine import CANCELED_BY_USER, Engine, EngineClosed
from .execution import CancelOutcome, Execution, ExecutionRequest
from .states import TERMINAL, State

__all__ = [
    "CANCELED_BY_USER", "CancelOutcome", "Engine", "EngineClosed", "Execution", "ExecutionRequest",
    "QueueFull", "State", "TERMINAL",
]
