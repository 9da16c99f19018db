"""Turns runner events into the client events of the original protocol, and keeps the
transcript (assistant text, tool calls, tool results) that is stored when the run ends."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class Reply:
    # Text arrives in many small deltas: kept as parts (appending to a str attribute copies
    # it every time, quadratic over a long reply).
    _parts: list[str] = field(default_factory=list)  # everything streamed in this execution
    _segment_start: int = 0  # index in _parts where the text since the last tool round starts
    final: str | None = None  # the runner's final message, if it sent one
    errors: list[str] = field(default_factory=list)
    usage: dict = field(default_factory=dict)
    transcript: list[dict] = field(default_factory=list)  # OpenAI-format messages produced
    _calls: dict[str, tuple[str, object]] = field(default_factory=dict)
    _open_turn: dict | None = None

    def apply(self, ev: dict) -> list[dict]:
        """One runner event -> the client events it becomes."""
        etype = ev["type"]
        if etype == "delta":
            self._parts.append(ev["text"])
            self._open_turn = None
            return [{"type": "stream", "content": ev["text"]}]
        if etype == "tool_call":
            args = ev["arguments"]
            self._calls[ev["id"]] = (ev["name"], args)
            call = {
                "id": ev["id"],
                "type": "function",
                "function": {"name": ev["name"], "arguments": args if isinstance(args, str) else json.dumps(args)},
            }
            if self._open_turn is None:
                self._open_turn = {"role": "assistant", "content": self.segment, "tool_calls": []}
                self.transcript.append(self._open_turn)
                self._segment_start = len(self._parts)
            self._open_turn["tool_calls"].append(call)
            return [{"type": "tool_call", "call_id": ev["id"], "name": ev["name"], "args": args,
                     "result": "", "status": "started"}]
        if etype == "tool_output":
            return [{"type": "tool_output", "call_id": ev["id"], "stream": ev["stream"], "data": ev["data"]}]
        if etype == "tool_result":
            name, args = self._calls.get(ev["id"], ("", {}))
            self.transcript.append({"role": "tool", "tool_call_id": ev["id"], "name": name, "content": ev["result"]})
            status = "finished" if ev["status"] == "ok" else "error"
            return [{"type": "tool_call", "call_id": ev["id"], "name": name, "args": args,
                     "result": ev["result"], "status": status}]
        if etype == "message":
            self.final = ev["content"]
            return []
        if etype == "usage":
            self.usage = {k: v for k, v in ev.items() if k != "type"}
            return []
        if etype == "error":
            self.errors.append(ev["message"])
            code = "runner_protocol" if ev.get("protocol") else "runner_error"
            return [{"type": "error", "code": code, "message": ev["message"]}]
        return []

    @property
    def text(self) -> str:
        """Everything streamed in this execution."""
        return "".join(self._parts)

    @property
    def segment(self) -> str:
        """The text since the last tool round."""
        return "".join(self._parts[self._segment_start:])

    @property
    def content(self) -> str:
        """What the reply says: the final message, or the partial text so far."""
        return self.final if self.final is not None else self.text

    @property
    def stored_content(self) -> str:
        """The closing assistant message's content (earlier segments are in the transcript)."""
        return self.final if self.final is not None else self.segment
