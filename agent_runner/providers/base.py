"""What a model provider is to the agent loop: one streamed turn at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict  # parsed JSON arguments; a provider that receives bad JSON raises ModelError


@dataclass
class ModelTurn:
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict | None = None


class ModelError(Exception):
    """The model call failed; the message is shown to the user and the execution fails."""


class Provider(Protocol):
    async def turn(
        self,
        messages: list[dict],
        tools: list[dict],
        on_delta: Callable[[str], None],
    ) -> ModelTurn:
        """Run one model turn over the OpenAI-format history, streaming text via on_delta.

        `tools` are OpenAI function-tool schemas ({"type":"function","function":{...}}).
        """
        ...

    async def aclose(self) -> None: ...
