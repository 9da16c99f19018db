"""`exec`: run a shell command in the workspace, streaming its output while it runs."""

from __future__ import annotations

import asyncio
import os
import re
import signal

from .base import ToolContext, ToolError

# Obviously destructive commands are refused outright; containment is the real guard.
DENY_PATTERNS = [
    re.compile(p)
    for p in (
        r"\brm\s+(-[a-zA-Z]*[rf][a-zA-Z]*\s+)+/(\s|$|\*)",  # rm -rf /
        r"\bmkfs(\.\w+)?\b",
        r"\bdd\s+.*\bof=/dev/(sd|nvme|vd|hd)",
        r":\(\)\s*\{\s*:\|:&\s*\};:",  # fork bomb
        r"\b(shutdown|reboot|halt|poweroff)\b",
    )
]


def denied(command: str) -> str | None:
    for pattern in DENY_PATTERNS:
        if pattern.search(command):
            return pattern.pattern
    return None


class ExecTool:
    name = "exec"
    description = (
        "Run a shell command (sh -c) in the session's workspace and return its combined output "
        "and exit status. Long-running commands are stopped at the timeout."
    )
    parameters = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "the shell command to run"},
            "timeout": {"type": "number", "description": "seconds before the command is stopped"},
        },
        "required": ["command"],
    }

    async def run(self, args: dict, ctx: ToolContext) -> str:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("exec needs a non-empty string 'command'")
        if (rule := denied(command)) is not None:
            raise ToolError(f"command refused by the deny list (matches {rule!r})")
        timeout = ctx.limits.exec_timeout_s
        if isinstance(args.get("timeout"), (int, float)) and args["timeout"] > 0:
            timeout = min(float(args["timeout"]), timeout)
        limit = ctx.limits.exec_output_bytes

        # Its own process group, so the runner can stop the whole command on cancel or timeout.
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", command,
            cwd=str(ctx.workspace),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        kept = bytearray()
        truncated = False

        async def pump() -> None:
            nonlocal truncated
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(4096):
                ctx.on_output("stdout", chunk.decode("utf-8", "replace"))
                room = limit - len(kept)
                if room > 0:
                    kept.extend(chunk[:room])
                if len(chunk) > room:
                    truncated = True

        timed_out = False
        try:
            await asyncio.wait_for(asyncio.gather(pump(), proc.wait()), timeout)
        except asyncio.TimeoutError:
            timed_out = True
        finally:
            if proc.returncode is None:
                # Canceled (SIGTERM to the runner) or timed out: stop the command's group.
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(asyncio.shield(proc.wait()), 0.2)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    pass
                if timed_out:
                    _signal_group(proc.pid, signal.SIGKILL)
                    await proc.wait()
        out = kept.decode("utf-8", "replace")
        if truncated:
            out += f"\n[output truncated at {limit} bytes]"
        if timed_out:
            return f"{out}\n[command timed out after {timeout:g} s]"
        return f"{out}\n[exit status {proc.returncode}]" if out else f"[exit status {proc.returncode}]"


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
