"""The exec tool: output, streaming, deny list, timeout, truncation, secrets, cancel."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from agent_runner.protocol import Limits
from agent_runner.tools import ToolContext, ToolError
from agent_runner.tools.exec import ExecTool, denied


def ctx_for(ws: Path, chunks: list[str] | None = None, **limits) -> ToolContext:
    sink = chunks if chunks is not None else []
    return ToolContext(workspace=ws, limits=Limits(**limits), call_id="c1", on_output=lambda s, d: sink.append(d))


def run(command: str, ws: Path, chunks: list[str] | None = None, timeout: float | None = None, **limits) -> str:
    args: dict = {"command": command}
    if timeout is not None:
        args["timeout"] = timeout
    return asyncio.run(ExecTool().run(args, ctx_for(ws, chunks, **limits)))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_output_and_exit_status(tmp_path):
    assert run("echo hello; echo oops >&2; exit 3", tmp_path) == "hello\noops\n\n[exit status 3]"
    assert run("true", tmp_path) == "[exit status 0]"
    assert run("pwd", tmp_path).splitlines()[0] == str(tmp_path.resolve())


def test_output_is_streamed_while_the_command_runs(tmp_path):
    chunks: list[str] = []
    out = run("echo one; sleep 0.5; echo two", tmp_path, chunks)
    assert len(chunks) >= 2 and "".join(chunks) == "one\ntwo\n"
    assert out.startswith("one\ntwo\n")


def test_streamed_utf8_survives_chunk_boundaries(tmp_path):
    chunks: list[str] = []
    run("python3 -c \"import sys; sys.stdout.write('é' * 20001)\"", tmp_path, chunks)
    text = "".join(chunks)
    assert text == "é" * 20001 and "\ufffd" not in text


@pytest.mark.parametrize("command", [
    "rm -rf /", "rm -rf / ", "rm -fr /*", "sudo rm -r -f /", "rm -rf ~", "rm -rf $HOME/", "rm -Rf /etc",
    "rm -rf --no-preserve-root /", "mkfs.ext4 /dev/sda1", "dd if=/dev/zero of=/dev/sda bs=1M",
    "echo x > /dev/nvme0n1", ":(){ :|:& };:", "shutdown -h now", "reboot", "kill -9 -1",
    "chmod -R 777 /",
])
def test_deny_list_refuses_destructive_commands(command):
    assert denied(command) is not None


@pytest.mark.parametrize("command", [
    "rm -rf build", "rm -rf ./dist /tmp/scratch", "rm -f /tmp/x.txt", "ls /", "echo reboot-notes > notes.txt",
    "kill -9 12345", "chmod -R u+w src", "dd if=in.img of=out.img",
])
def test_deny_list_lets_ordinary_commands_through(command):
    assert denied(command) is None


def test_denied_command_is_a_tool_error(tmp_path):
    with pytest.raises(ToolError, match="deny list"):
        run("rm -rf /", tmp_path)
    with pytest.raises(ToolError, match="non-empty"):
        run("   ", tmp_path)


def test_timeout_stops_the_whole_process_group(tmp_path):
    start = time.monotonic()
    out = run("sleep 30 & echo $! > bg.pid; sleep 30", tmp_path, timeout=0.5)
    assert "[command timed out after 0.5 s and was stopped]" in out
    assert time.monotonic() - start < 10
    bg = int((tmp_path / "bg.pid").read_text())
    assert wait_until(lambda: not alive(bg)), "the background sleep outlived the timeout"


def test_timeout_is_capped_by_the_limit(tmp_path):
    out = run("sleep 30", tmp_path, timeout=999, exec_timeout_s=0.3)
    assert "timed out after 0.3 s" in out


def test_long_output_keeps_start_and_end(tmp_path):
    chunks: list[str] = []
    out = run("seq 1 100000", tmp_path, chunks, exec_output_bytes=2000)
    assert out.startswith("1\n2\n3\n")
    assert "100000\n" in out and out.rstrip().endswith("[exit status 0]")
    assert "bytes of output omitted" in out
    assert len(out) < 2500
    assert "".join(chunks).endswith("99999\n100000\n")  # the live stream is whole


def test_secrets_never_reach_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak-1")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-should-not-leak-2")
    monkeypatch.setenv("DB_PASSWORD", "pw-should-not-leak-3")
    monkeypatch.setenv("aws_secret_access_key", "aws-should-not-leak-4")
    monkeypatch.setenv("KAKOCLAW_PROVIDERS_OPENAI_API_KEY", "sk-should-not-leak-5")
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    out = run("env", tmp_path)
    assert "should-not-leak" not in out
    assert "HARMLESS_SETTING=visible" in out
    assert f"PWD={tmp_path}" in out


def test_background_process_holding_the_output_does_not_block(tmp_path):
    start = time.monotonic()
    out = run("sleep 20 & echo $! > bg.pid; echo started", tmp_path)
    assert time.monotonic() - start < 10
    assert out.startswith("started\n") and "[exit status 0]" in out
    assert "background process" in out
    bg = int((tmp_path / "bg.pid").read_text())
    os.killpg(os.getpgid(bg), signal.SIGKILL)


def test_cancel_sends_sigterm_to_the_group_and_never_sigkill(tmp_path):
    """On cancel the command's group gets SIGTERM only: the supervisor escalates."""
    script = (
        "echo $$ > shell.pid; trap 'echo term >> got_term' TERM; echo started; "
        "while true; do sleep 0.05; done"
    )
    chunks: list[str] = []

    async def go() -> float:
        task = asyncio.create_task(ExecTool().run({"command": script}, ctx_for(tmp_path, chunks)))
        while "started" not in "".join(chunks):
            await asyncio.sleep(0.02)
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - start

    elapsed = asyncio.run(go())
    assert elapsed < 2.0
    pid = int((tmp_path / "shell.pid").read_text())
    try:
        assert wait_until(lambda: (tmp_path / "got_term").exists()), "the command never got SIGTERM"
        time.sleep(0.5)
        assert alive(pid), "the command was killed; only SIGTERM was expected"
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_missing_workspace(tmp_path):
    with pytest.raises(ToolError, match="does not exist"):
        run("true", tmp_path / "gone")
