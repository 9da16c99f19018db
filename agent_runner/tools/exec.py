"""`exec`: run a shell command in the workspace, streaming its output while it runs.

The command runs in its own process group with an environment scrubbed of secrets (no
variable whose name mentions a key, token, secret or password reaches it). On timeout the
group gets SIGTERM, then SIGKILL; on cancel (SIGTERM to the runner) it gets SIGTERM only,
and the supervisor escalates on the whole execution.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import re
import signal
import subprocess

from .base import ToolContext, ToolError

# Obviously destructive commands are refused outright; containment is the real guard.
DENY_PATTERNS = [
    re.compile(p)
    for p in (
        # rm -rf of /, /*, ~, $HOME or a top-level system directory
        r"\brm\s+(-[a-zA-Z-]*\s+)*-[a-zA-Z]*[rR][a-zA-Z]*\s+(-[a-zA-Z-]*\s+)*"
        r"(/|/\*|~/?|\$HOME/?|\$\{HOME\}/?|/(bin|boot|dev|etc|home|lib|lib64|opt|proc|root|sbin|sys|usr|var)/?)(\s|$|;|&|\|)",
        r"--no-preserve-root",
        r"\bmkfs(\.\w+)?\b",
        r"\bdd\s+.*\bof=/dev/(sd|nvme|vd|hd|xvd|mmcblk)",
        r">\s*/dev/(sd|nvme|vd|hd|xvd|mmcblk)",
        r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",  # fork bomb
        r"(^|[;&|(`]|\$\(|\bsudo|\bexec)\s*(shutdown|reboot|halt|poweroff|init\s+[06])(\s|$|;|&|\|)",
        r"\bkill\s+(-[A-Za-z0-9]+\s+)*-1\b",  # kill every process the user can signal
        r"\bch(mod|own)\s+(-[a-zA-Z]*\s+)*-[a-zA-Z]*R[a-zA-Z]*\s+\S+\s+/(\s|$)",
    )
]

# Environment variables whose names contain these never reach a command.
SECRET_NAME_PARTS = ("KEY", "TOKEN", "SECRET", "PASSWORD")

STREAM_CHUNK = 4096
# Live output streamed to the chat, per command; the returned result is bounded separately
# by limits.exec_output_bytes.
STREAM_LIMIT_BYTES = 4 * 1024 * 1024
TERM_WAIT_S = 0.2  # after SIGTERM on cancel, how long to wait for the command before returning
KILL_AFTER_TERM_S = 1.0  # on timeout, SIGKILL the group this long after SIGTERM
POLL_S = 0.05
DRAIN_AFTER_EXIT_S = 1.0  # after the shell exits, how long its output may still flow


def denied(command: str) -> str | None:
    for pattern in DENY_PATTERNS:
        if pattern.search(command):
            return pattern.pattern
    return None


def child_env(workspace: str) -> dict[str, str]:
    """os.environ without secrets, for tool processes."""
    env = {k: v for k, v in os.environ.items() if not any(part in k.upper() for part in SECRET_NAME_PARTS)}
    env["PWD"] = workspace
    return env


class _Capture:
    """Keeps the head and the tail of a command's output within `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        half = self.limit // 2
        room = (self.limit - half) - len(self.head)
        if room > 0:
            self.head.extend(chunk[:room])
            chunk = chunk[room:]
        if chunk and half:
            self.tail.extend(chunk)
            if len(self.tail) > half:
                del self.tail[: len(self.tail) - half]

    def text(self) -> str:
        kept = len(self.head) + len(self.tail)
        if self.total <= kept:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace")
        omitted = self.total - kept
        return (
            bytes(self.head).decode("utf-8", "replace")
            + f"\n[... {omitted} bytes of output omitted (the result keeps {self.limit} bytes: its start and end) ...]\n"
            + bytes(self.tail).decode("utf-8", "replace")
        )


class ExecTool:
    name = "exec"
    description = (
        "Run a shell command (sh -c) in the session's workspace and return its combined stdout "
        "and stderr and its exit status. Output is streamed while it runs; long output keeps its "
        "start and end. Commands are stopped at the timeout. Obviously destructive commands "
        "(rm -rf /, mkfs, shutdown, ...) are refused."
    )
    parameters = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "the shell command to run"},
            "timeout": {
                "type": "number",
                "description": "seconds before the command is stopped (capped by the runner's limit)",
            },
        },
        "required": ["command"],
        "additionalProperties": False,
    }

    async def run(self, args: dict, ctx: ToolContext) -> str:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("exec needs a non-empty string 'command'")
        if (rule := denied(command)) is not None:
            raise ToolError(f"command refused by the deny list (matches {rule!r})")
        timeout = ctx.limits.exec_timeout_s
        requested = args.get("timeout")
        if isinstance(requested, str):
            try:
                requested = float(requested)
            except ValueError:
                requested = None
        if isinstance(requested, (int, float)) and not isinstance(requested, bool) and requested > 0:
            timeout = min(float(requested), timeout)
        workspace = str(ctx.workspace)
        if not os.path.isdir(workspace):
            raise ToolError(f"the workspace {workspace!r} does not exist")

        # Its own process group, so the runner can stop the whole command on cancel or timeout.
        # Popen and a pipe of our own rather than asyncio's subprocess transport: that one
        # SIGKILLs a still-running child when it is closed or collected, and on cancel the
        # command must get SIGTERM only.
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                ["sh", "-c", command],
                cwd=workspace,
                env=child_env(workspace),
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        try:
            transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        except BaseException:
            pipe.close()
            _signal_group(proc.pid, signal.SIGTERM)
            raise
        capture = _Capture(ctx.limits.exec_output_bytes)
        streamed = 0
        decoder = codecs.getincrementaldecoder("utf-8")("replace")

        async def pump() -> None:
            nonlocal streamed
            while chunk := await reader.read(STREAM_CHUNK):
                capture.add(chunk)
                if streamed < STREAM_LIMIT_BYTES:
                    streamed += len(chunk)
                    if text := decoder.decode(chunk):
                        ctx.on_output("stdout", text)
                    if streamed >= STREAM_LIMIT_BYTES:
                        ctx.on_output("stdout", f"\n[live output stopped after {STREAM_LIMIT_BYTES} bytes; the command goes on]\n")
            if streamed < STREAM_LIMIT_BYTES and (rest := decoder.decode(b"", final=True)):
                ctx.on_output("stdout", rest)

        pump_task = asyncio.create_task(pump())
        timed_out = False
        detached = False
        try:
            try:
                async with asyncio.timeout(timeout):
                    # The output ends when every process holding the pipe is gone; a background
                    # process may hold it for good, so the shell's exit is watched on its own.
                    while proc.poll() is None and not pump_task.done():
                        await asyncio.wait({pump_task}, timeout=POLL_S)
                    if not pump_task.done():
                        done, _ = await asyncio.wait({pump_task}, timeout=DRAIN_AFTER_EXIT_S)
                        detached = not done
                    while proc.poll() is None:  # output closed, the shell still running
                        await asyncio.sleep(POLL_S)
            except TimeoutError:
                timed_out = True
        finally:
            if not pump_task.done():
                pump_task.cancel()
                try:
                    await pump_task
                except asyncio.CancelledError:
                    pass
            if proc.poll() is None:
                # Canceled (SIGTERM to the runner) or timed out: stop the command's group.
                _signal_group(proc.pid, signal.SIGTERM)
                await _exited(proc, KILL_AFTER_TERM_S if timed_out else TERM_WAIT_S)
                if timed_out:
                    # Only on our own timeout: on cancel the supervisor escalates to SIGKILL.
                    _signal_group(proc.pid, signal.SIGKILL)
                    await _exited(proc, KILL_AFTER_TERM_S)
            elif timed_out:
                _signal_group(proc.pid, signal.SIGKILL)  # the shell exited; stragglers in its group
            # Closed last: a shell told to stop may still report on the pipe, and writing to a
            # closed one would kill it with SIGPIPE.
            transport.close()
        if pump_task.done() and not pump_task.cancelled() and (error := pump_task.exception()) is not None:
            raise error
        out = capture.text()
        if timed_out:
            return f"{out}\n[command timed out after {timeout:g} s and was stopped]"
        status = proc.returncode
        if status is not None and status < 0:
            summary = f"[killed by signal {signal.Signals(-status).name}]" if -status in signal.valid_signals() else f"[exit status {status}]"
        else:
            summary = f"[exit status {status}]"
        if detached:
            summary += (
                "\n[a background process still holds the command's output, which is no longer "
                "captured; redirect background output to a file]"
            )
        return f"{out}\n{summary}" if out else summary


async def _exited(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait up to `timeout` for the process to exit (reaping it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while proc.poll() is None and loop.time() < deadline:
        await asyncio.sleep(POLL_S)
    return proc.returncode is not None


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
