"""A deterministic model that needs no network: for first runs, demos and tests.

It behaves like a model that streams and calls tools, so the whole agent loop runs.
Its commands are a contract (DESIGN.md, "offline provider"):
  any text            quote it back in several deltas
  /shell <command>    call `exec`, then summarize its result
  /tool <name> <json> call any enabled tool with those arguments
  /sleep <seconds>    a delta about every second, then a reply
  /flood <n>          n deltas as fast as possible, then the final message
  /fail <text>        the model call fails with that text
  /crash              the runner exits with status 3 and no final message
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Callable

from ..protocol import EXIT_CRASH, ModelSettings
from .base import ModelError, ModelTurn, ToolCall


def _last_user_text(messages: list[dict]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _tool_results_since_last_user(messages: list[dict]) -> list[dict]:
    results: list[dict] = []
    for msg in reversed(messages):
        if msg.get("role") == "user":
            break
        if msg.get("role") == "tool":
            results.append(msg)
    return list(reversed(results))


def _chunks(text: str, parts: int = 4) -> list[str]:
    words = text.split(" ")
    size = max(1, -(-len(words) // parts))
    out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [c + (" " if i < len(out) - 1 else "") for i, c in enumerate(out)]


class OfflineProvider:
    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self._calls = 0

    async def aclose(self) -> None:
        return None

    async def turn(self, messages: list[dict], tools: list[dict], on_delta: Callable[[str], None]) -> ModelTurn:
        text = _last_user_text(messages).strip()
        results = _tool_results_since_last_user(messages)
        if results:
            return self._summarize(results, on_delta)
        command, _, rest = text.partition(" ")
        rest = rest.strip()
        if command == "/shell" and rest:
            return self._call("exec", {"command": rest})
        if command == "/tool" and rest:
            name, _, raw_args = rest.partition(" ")
            try:
                args = json.loads(raw_args) if raw_args.strip() else {}
            except ValueError as exc:
                raise ModelError(f"/tool arguments are not JSON: {exc}") from None
            if not isinstance(args, dict):
                raise ModelError("/tool arguments must be a JSON object")
            return self._call(name, args)
        if command == "/sleep":
            return await self._sleep(rest, on_delta)
        if command == "/flood":
            return self._flood(rest, on_delta)
        if command == "/fail":
            raise ModelError(rest or "offline model failure requested")
        if command == "/crash":
            sys.stdout.flush()
            os._exit(EXIT_CRASH)
        return self._stream(f'You said: "{text}". This is the offline model, answering without a network.', on_delta)

    def _stream(self, reply: str, on_delta: Callable[[str], None]) -> ModelTurn:
        for chunk in _chunks(reply):
            on_delta(chunk)
        return ModelTurn(content=reply, usage={"prompt_tokens": 0, "completion_tokens": len(reply.split())})

    def _call(self, name: str, args: dict) -> ModelTurn:
        self._calls += 1
        return ModelTurn(tool_calls=[ToolCall(id=f"call_{self._calls}", name=name, arguments=args)])

    def _summarize(self, results: list[dict], on_delta: Callable[[str], None]) -> ModelTurn:
        parts = []
        for res in results:
            body = str(res.get("content", ""))
            lines = body.strip().splitlines()
            preview = "\n".join(lines[-20:]) if lines else "(no output)"
            parts.append(f"Tool result:\n```\n{preview}\n```")
        return self._stream("\n".join(parts), on_delta)

    async def _sleep(self, arg: str, on_delta: Callable[[str], None]) -> ModelTurn:
        try:
            seconds = float(arg or "1")
        except ValueError:
            raise ModelError(f"/sleep needs a number of seconds, got {arg!r}") from None
        seconds = max(0.0, seconds)
        loop = asyncio.get_running_loop()
        start = loop.time()
        text = []
        tick = 0
        while loop.time() - start < seconds:
            tick += 1
            chunk = f"tick {tick} "
            text.append(chunk)
            on_delta(chunk)
            await asyncio.sleep(min(1.0, max(0.0, seconds - (loop.time() - start))))
        final = f"Slept {seconds:g} s."
        on_delta(final)
        text.append(final)
        return ModelTurn(content="".join(text))

    def _flood(self, arg: str, on_delta: Callable[[str], None]) -> ModelTurn:
        try:
            count = int(arg or "100")
        except ValueError:
            raise ModelError(f"/flood needs a count, got {arg!r}") from None
        count = max(0, count)
        for i in range(count):
            on_delta(f"x{i} ")
        return ModelTurn(content=f"Flooded {count} deltas.")
