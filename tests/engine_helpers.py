"""Helpers shared by the engine tests: an engine in a temp data dir, event collection,
and a whole-process-table scan for leftovers."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import psutil

from supervisor.config import load_settings
from supervisor.engine import Engine, ExecutionRequest
from supervisor.hub import Hub

ROOT = Path(__file__).resolve().parent.parent
EVIL_RUNNER = str(ROOT / "tests" / "fakes" / "evil_runner.py")


def settings_for(tmp: Path, mode: str, **env: str):
    base = {"KAKOCLAW_STORAGE_PATH": str(tmp), "KAKOCLAW_CONTAINMENT": mode, "KAKOCLAW_RUNNER_POOL_SIZE": "0"}
    base.update({f"KAKOCLAW_{k.upper()}": str(v) for k, v in env.items()})
    return load_settings(base)


def request(session: str, text: str, user: str = "alice", **kw) -> ExecutionRequest:
    return ExecutionRequest(session, user, [{"role": "user", "content": text}], tools=["exec"], user_message=text, **kw)


async def collect(hub: Hub, session: str, until_ready: int = 1, timeout: float = 60) -> list[dict]:
    """Subscribe and gather events until `until_ready` ready events arrived."""
    sub = hub.subscribe(session)
    events: list[dict] = []
    seen = 0
    try:
        async with asyncio.timeout(timeout):
            while seen < until_ready:
                for frame in await sub.next_batch():
                    ev = json.loads(frame)
                    events.append(ev)
                    seen += ev["type"] == "ready"
    finally:
        sub.close()
    return events


async def wait_for(predicate, timeout: float = 20.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        await asyncio.sleep(every)
    raise AssertionError("condition not met in time")


def survivors(token: str) -> list[str]:
    """Every live process on the machine whose command line carries token."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if token in cmd and proc.pid != os.getpid() and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {cmd}")
        except psutil.Error:
            pass
    return found


def run(coro):
    return asyncio.run(coro)


async def with_engine(settings, body):
    hub = Hub()
    async with Engine(settings, hub) as engine:
        return await body(engine, hub)
