"""The runner protocol: the one home of the contract between supervisor and agent_runner.

stdin carries one JSON line, the job spec; stdout carries JSON lines, one event each.
Both sides import this module, so field names live here and nowhere else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Runner -> supervisor event types and the fields each must carry (name -> accepted types).
EVENT_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "delta": {"text": (str,)},
    "tool_call": {"id": (str,), "name": (str,), "arguments": (dict, str)},
    "tool_output": {"id": (str,), "stream": (str,), "data": (str,)},
    "tool_result": {"id": (str,), "status": (str,), "result": (str,)},
    "message": {"content": (str,)},
    "usage": {},
    "error": {"message": (str,)},
}
TOOL_STATUSES = ("ok", "error")

# Exit statuses of the runner.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_SPEC = 2
EXIT_CRASH = 3

# Environment variable that marks every process of an execution (the containment fallback
# finds processes by it).
MARKER_ENV = "KAKOCLAW_EXECUTION_UNIT"


class ProtocolError(ValueError):
    """A line that breaks the protocol; the message says why, for the operator."""


def validate_event(obj: Any) -> dict:
    """Return obj if it is a well-formed runner event, else raise ProtocolError."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"event is a JSON {type(obj).__name__}, not an object")
    etype = obj.get("type")
    if not isinstance(etype, str):
        raise ProtocolError("event has no string 'type'")
    fields = EVENT_FIELDS.get(etype)
    if fields is None:
        raise ProtocolError(f"unknown event type {etype[:64]!r}")
    for name, types in fields.items():
        if not isinstance(obj.get(name), types):
            raise ProtocolError(f"{etype} event: field {name!r} missing or of the wrong type")
    if etype == "tool_result" and obj["status"] not in TOOL_STATUSES:
        raise ProtocolError(f"tool_result status must be one of {TOOL_STATUSES}")
    return obj


def encode_event(etype: str, **fields: Any) -> bytes:
    """One event as one stdout line."""
    return (json.dumps({"type": etype, **fields}, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


@dataclass
class ModelSettings:
    provider: str = "offline"
    model: str = "offline"
    api_key: str = field(default="", repr=False)  # never shown when a spec is printed
    api_base: str = ""
    max_tokens: int = 4096
    temperature: float = 0.7
    max_tool_rounds: int = 20
    timeout_s: float = 120.0


@dataclass
class Limits:
    wall_time_s: float = 600.0
    memory_bytes: int = 0  # 0 = no limit
    output_bytes: int = 64 * 1024 * 1024
    exec_timeout_s: float = 120.0
    exec_output_bytes: int = 64 * 1024


@dataclass
class JobSpec:
    execution_id: str
    session_id: str
    messages: list[dict]
    model: ModelSettings = field(default_factory=ModelSettings)
    tools: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    workspace: str = "."

    def to_line(self) -> bytes:
        from dataclasses import asdict

        return (json.dumps(asdict(self), ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes | str) -> "JobSpec":
        try:
            raw = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"job spec is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ProtocolError("job spec must be a JSON object")
        try:
            return cls(
                execution_id=str(raw["execution_id"]),
                session_id=str(raw["session_id"]),
                messages=list(raw.get("messages") or []),
                model=ModelSettings(**(raw.get("model") or {})),
                tools=list(raw.get("tools") or []),
                limits=Limits(**(raw.get("limits") or {})),
                workspace=str(raw.get("workspace") or "."),
            )
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"job spec is incomplete or has unknown fields: {exc}") from None
