"""The agent loop: model turn -> tool calls -> tool results -> next model turn."""

from __future__ import annotations

import json
from pathlib import Path

from .output import EventWriter
from .protocol import EXIT_FAILED, EXIT_OK, JobSpec
from .providers import ModelError, Provider
from .tools import Tool, ToolContext, ToolError, schema_of


async def run_agent(spec: JobSpec, provider: Provider, tools: dict[str, Tool], out: EventWriter) -> int:
    messages = list(spec.messages)
    schemas = [schema_of(t) for t in tools.values()]
    workspace = Path(spec.workspace)
    max_rounds = spec.model.max_tool_rounds
    for round_no in range(max_rounds + 1):
        try:
            turn = await provider.turn(messages, schemas, out.delta)
        except ModelError as exc:
            out.emit("error", message=f"model error: {exc}")
            return EXIT_FAILED
        if turn.usage:
            out.emit("usage", **turn.usage)
        if not turn.tool_calls:
            out.emit("message", content=turn.content)
            return EXIT_OK
        if round_no == max_rounds:
            out.emit("error", message=f"stopped after {max_rounds} tool rounds (max_tool_rounds)")
            return EXIT_FAILED
        messages.append(
            {
                "role": "assistant",
                "content": turn.content or None,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in turn.tool_calls
                ],
            }
        )
        for call in turn.tool_calls:
            out.emit("tool_call", id=call.id, name=call.name, arguments=call.arguments)
            status, result = await _run_tool(call.id, call.name, call.arguments, tools, workspace, spec, out)
            out.emit("tool_result", id=call.id, status=status, result=result)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return EXIT_FAILED  # unreachable: the loop returns on its last round


async def _run_tool(
    call_id: str, name: str, args: dict, tools: dict[str, Tool], workspace: Path, spec: JobSpec, out: EventWriter
) -> tuple[str, str]:
    tool = tools.get(name)
    if tool is None:
        return "error", f"unknown or disabled tool {name!r}; enabled: {', '.join(tools) or 'none'}"
    ctx = ToolContext(
        workspace=workspace,
        limits=spec.limits,
        call_id=call_id,
        on_output=lambda stream, data: out.emit("tool_output", id=call_id, stream=stream, data=data),
    )
    try:
        return "ok", await tool.run(args, ctx)
    except ToolError as exc:
        return "error", str(exc)
    except Exception as exc:  # a tool bug must not take the agent down
        return "error", f"{name} failed: {type(exc).__name__}: {exc}"
