"""What a tool is to the agent loop: a name, a JSON schema, and an async run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Protocol

from ..protocol import Limits


class ToolError(Exception):
    """The tool refused or failed; the message goes back to the model as an error result."""


@dataclass
class ToolContext:
    workspace: Path
    limits: Limits
    call_id: str
    # Streams live output while the tool runs: on_output(stream_name, text).
    on_output: Callable[[str, str], None]


class Tool(Protocol):
    name: str
    description: str
    parameters: dict  # JSON schema of the arguments object

    async def run(self, args: dict, ctx: ToolContext) -> str: ...


def schema_of(tool: Tool) -> dict:
    """The OpenAI function-tool schema the model receives."""
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


ToolRunner = Callable[[dict, ToolContext], Awaitable[str]]
