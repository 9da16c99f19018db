"""Shutdown interrupts everything; a restart after a SIGKILLed supervisor kills what it left."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

from tests.engine_helpers import ROOT, request, run, settings_for, survivors, wait_for, with_engine

SCRIPT = ROOT / "tests" / "fakes" / "engine_host.py"


def _start_host(data_dir, mode, token: str, count: int = 3) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(data_dir), mode, token, str(count)],
        stdout=subprocess.PIPE, env=env, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", line
    deadline = time.monotonic() + 20
    while len(survivors(f"sleep {token}")) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(survivors(f"sleep {token}")) >= count
    return proc


def test_shutdown_cancels_every_execution_as_interrupted(data_dir, mode):
    async def body(engine, hub):
        exs = [engine.submit(request(f"s{i}", "/sleep 30")) for i in range(3)]
        await wait_for(lambda: all(ex.reply.text for ex in exs))
        return exs

    exs = run(with_engine(settings_for(data_dir, mode), body))  # leaving the block shuts down
    assert [ex.state.value for ex in exs] == ["interrupted"] * 3
    assert all(ex.error == "supervisor shut down" for ex in exs)


def test_sigterm_to_a_supervisor_process_leaves_nothing(data_dir, mode):
    token = f"{2000 + uuid.uuid4().int % 10**6 / 1000:.3f}"
    host = _start_host(data_dir, mode, token)
    host.send_signal(signal.SIGTERM)
    out, _ = host.communicate(timeout=30)
    assert host.returncode == 0
    assert out.count("interrupted") == 3
    assert survivors(f"sleep {token}") == []


def test_restart_after_sigkill_reconciles(data_dir, mode):
    token = f"{3000 + uuid.uuid4().int % 10**6 / 1000:.3f}"
    host = _start_host(data_dir, mode, token)
    host.kill()
    host.wait()
    time.sleep(0.5)
    assert survivors(f"sleep {token}"), "the SIGKILLed supervisor's tools should still be running"

    async def body(engine, hub):
        return engine.reconciled

    reconciled = run(with_engine(settings_for(data_dir, mode), body))
    assert reconciled
    deadline = time.monotonic() + 5
    while survivors(f"sleep {token}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert survivors(f"sleep {token}") == []


def test_processes_of_no_live_execution_are_listed_as_orphans(data_dir, mode):
    token = f"{6000 + uuid.uuid4().int % 10**6 / 1000:.3f}"

    async def body(engine, hub):
        from agent_runner.protocol import MARKER_ENV

        if mode == "cgroup":
            stray = engine.containment.parent / "stray-unit"
            stray.mkdir()
            script = f'echo $$ > "{stray}/cgroup.procs"; exec sleep {token}'
            proc = subprocess.Popen(["sh", "-c", script])
        else:
            env = {**os.environ, MARKER_ENV: f"{engine.instance}:gone-unit"}
            proc = subprocess.Popen(["sleep", token], env=env)
        try:
            await wait_for(lambda: survivors(f"sleep {token}"))
            # Older than the next unit by more than process start times' 1 s resolution, so
            # the fallback's orphan rule cannot attribute it to that unit.
            await asyncio.sleep(1.5)
            live = engine.submit(request("s", "/sleep 30"))
            await wait_for(lambda: live.reply.text)
            orphans = engine.orphans()
            await engine.cancel(live.id, grace=0.5)
            return orphans, live.pid
        finally:
            proc.kill()
            proc.wait()
            if mode == "cgroup":
                await wait_for(lambda: not (stray / "cgroup.procs").read_text().strip())
                stray.rmdir()

    orphans, live_pid = run(with_engine(settings_for(data_dir, mode), body))
    assert [o["cmdline"] for o in orphans] == [f"sleep {token}"]
    assert live_pid not in [o["pid"] for o in orphans]
