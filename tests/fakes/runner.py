"""Runs the real `python -m agent_runner` as a subprocess: one job spec line on stdin, JSON
events read from stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_runner.protocol import JobSpec, Limits, ModelSettings, validate_event

ALL_TOOLS = ["exec", "read_file", "write_file", "edit_file", "append_file", "list_dir", "web_fetch"]


def make_spec(workspace: Path, content: str = "hello", *, provider: str = "offline", model: str = "offline",
              api_base: str = "", api_key: str = "", tools: list[str] | None = None,
              messages: list[dict] | None = None, limits: Limits | None = None, **model_kw: Any) -> JobSpec:
    return JobSpec(
        execution_id="exec-test",
        session_id="web:chat:test",
        messages=messages if messages is not None else [{"role": "user", "content": content}],
        model=ModelSettings(provider=provider, model=model, api_base=api_base, api_key=api_key, **model_kw),
        tools=list(ALL_TOOLS if tools is None else tools),
        limits=limits or Limits(),
        workspace=str(workspace),
    )


def runner_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class RunnerResult:
    returncode: int
    events: list[dict]
    stdout: bytes
    stderr: str

    def of(self, etype: str) -> list[dict]:
        return [e for e in self.events if e["type"] == etype]

    @property
    def text(self) -> str:
        return "".join(e["text"] for e in self.of("delta"))


def parse_events(stdout: bytes) -> list[dict]:
    return [validate_event(json.loads(line)) for line in stdout.splitlines() if line.strip()]


def run_runner(spec: JobSpec, *, env: dict[str, str] | None = None, timeout: float = 60.0) -> RunnerResult:
    proc = subprocess.run(
        [sys.executable, "-m", "agent_runner"],
        input=spec.to_line(),
        capture_output=True,
        env=runner_env(env),
        timeout=timeout,
    )
    return RunnerResult(proc.returncode, parse_events(proc.stdout), proc.stdout, proc.stderr.decode("utf-8", "replace"))


@dataclass
class LiveRunner:
    """A runner whose events are read as they come, for tests that act mid-run."""

    proc: subprocess.Popen
    events: list[dict] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    cond: threading.Condition = field(default_factory=threading.Condition)
    eof: bool = False

    @classmethod
    def start(cls, spec: JobSpec, env: dict[str, str] | None = None) -> "LiveRunner":
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent_runner"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=runner_env(env),
        )
        assert proc.stdin is not None
        proc.stdin.write(spec.to_line())
        proc.stdin.close()
        live = cls(proc)
        threading.Thread(target=live._read, daemon=True).start()
        return live

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.raw.extend(line)
                self.events.append(validate_event(json.loads(line)))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0) -> list[dict]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.events):
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise AssertionError(f"runner events never matched; got {self.events!r}")
                self.cond.wait(left)
            return list(self.events)

    def wait_exit(self, timeout: float = 30.0) -> int:
        rc = self.proc.wait(timeout)
        with self.cond:
            self.cond.wait_for(lambda: self.eof, timeout)
        return rc

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode("utf-8", "replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
