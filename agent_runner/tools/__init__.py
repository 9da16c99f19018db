"""The agent's tools, by name (the Go original's names)."""

from __future__ import annotations

from .base import Tool, ToolContext, ToolError, schema_of
from .exec import ExecTool


def all_tools() -> dict[str, Tool]:
    tools: list[Tool] = [ExecTool()]
    return {t.name: t for t in tools}


def select_tools(names: list[str]) -> dict[str, Tool]:
    """The enabled subset, in the order asked; unknown names are ignored."""
    available = all_tools()
    return {n: available[n] for n in names if n in available}


__all__ = ["Tool", "ToolContext", "ToolError", "all_tools", "schema_of", "select_tools"]
