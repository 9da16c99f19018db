"""The agent's tools, by name (the Go original's names)."""

from __future__ import annotations

from .base import Tool, ToolContext, ToolError, schema_of
from .exec import ExecTool
from .files import AppendFileTool, EditFileTool, ListDirTool, ReadFileTool, WriteFileTool
from .web import WebFetchTool


def all_tools() -> dict[str, Tool]:
    tools: list[Tool] = [
        ExecTool(),
        ReadFileTool(),
        WriteFileTool(),
        EditFileTool(),
        AppendFileTool(),
        ListDirTool(),
        WebFetchTool(),
    ]
    return {t.name: t for t in tools}


TOOL_NAMES = tuple(all_tools())


def select_tools(names: list[str]) -> dict[str, Tool]:
    """The enabled subset, in the order asked; unknown names are ignored."""
    available = all_tools()
    return {n: available[n] for n in names if n in available}


__all__ = ["TOOL_NAMES", "Tool", "ToolContext", "ToolError", "all_tools", "schema_of", "select_tools"]
