"""`kakoclaw ps` and `kakoclaw cancel` as subprocesses against a real running server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from supervisor.auth import load_or_create_secret
from supervisor.store import Store
from tests.server_helpers import free_port, ws_events_until

ROOT = Path(__file__).resolve().parents[2]


def kakoclaw(data_dir: Path, port: int, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAKOCLAW_STORAGE_PATH": str(data_dir), "KAKOCLAW_WEB_PORT": str(port)}
    env.pop("KAKOCLAW_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


def start_sleeper(server, token: str, seconds: int = 60) -> tuple[str, str]:
    """Start `/sleep` in a new session, leave it running in the background; (session, execution id)."""
    session = f"web:chat:{uuid.uuid4().hex[:8]}"

    async def body() -> str:
        async with websockets.connect(f"{server.ws_url}?token={token}") as ws:
            await ws.send(json.dumps({"type": "message", "session_id": session, "content": f"/sleep {seconds}"}))
            events = await ws_events_until(ws, lambda e: e["type"] == "stream", timeout=60)
            return events[-1]["execution_id"]

    execution_id = asyncio.run(body())
    # Wait until the process table shows the runner.
    deadline = time.monotonic() + 30
    with server.client(token) as client:
        while time.monotonic() < deadline:
            rows = {r["id"]: r for r in client.get("/api/v1/chat/active").json()}
            if rows.get(execution_id, {}).get("processes"):
                return session, execution_id
            time.sleep(0.1)
    raise AssertionError(f"{execution_id} never showed processes")


def test_ps_then_cancel_by_session(server, admin_token):
    session, execution_id = start_sleeper(server, admin_token)

    ps = kakoclaw(server.data_dir, server.port, "ps")
    assert ps.returncode == 0, ps.stderr
    lines = ps.stdout.splitlines()
    assert lines[0].split() == ["EXECUTION", "SESSION", "USER", "STATE", "PID", "UPTIME", "CPU%", "RSS"]
    row = next(line for line in lines if line.startswith(execution_id))
    assert session in row and "running" in row and "admin" in row
    runner_pid = row.split()[4]
    assert runner_pid.isdigit()
    assert any(line.startswith("    PID") and "COMMAND" in line for line in lines)
    assert any(line.startswith(f"    {runner_pid} ") and "agent_runner" in line for line in lines)

    raw = kakoclaw(server.data_dir, server.port, "ps", "--json")
    assert raw.returncode == 0, raw.stderr
    active = json.loads(raw.stdout)
    mine = next(r for r in active if r["id"] == execution_id)
    assert mine["session_id"] == session and str(mine["pid"]) == runner_pid
    assert {"started_at", "duration"} <= mine.keys() and mine["processes"]

    cancel = kakoclaw(server.data_dir, server.port, "cancel", session, "--grace", "2")
    assert cancel.returncode == 0, cancel.stderr
    assert "Canceled 1 execution(s)" in cancel.stdout
    assert f"{execution_id}: canceled" in cancel.stdout

    after = kakoclaw(server.data_dir, server.port, "ps")
    assert after.returncode == 0 and execution_id not in after.stdout
    again = kakoclaw(server.data_dir, server.port, "cancel", session)
    assert again.returncode == 1 and "Nothing was running" in again.stdout


def test_cancel_by_execution_id_with_force(server, admin_token):
    session, execution_id = start_sleeper(server, admin_token)
    _, other_execution = start_sleeper(server, admin_token)

    cancel = kakoclaw(server.data_dir, server.port, "cancel", execution_id, "--force")
    assert cancel.returncode == 0, cancel.stderr + cancel.stdout
    assert f"{execution_id}: killed by SIGKILL" in cancel.stdout

    with server.client(admin_token) as client:
        live = {r["id"] for r in client.get("/api/v1/chat/active").json()}
        assert execution_id not in live and other_execution in live  # only the one named
        record = client.get(f"/api/v1/executions/{execution_id}").json()
    assert record["state"] == "killed"
    assert kakoclaw(server.data_dir, server.port, "cancel", other_execution).returncode == 0


def test_ps_when_no_server_is_running(tmp_path):
    data = tmp_path / "data"
    load_or_create_secret(data)
    with Store.open(data) as store:
        store.create_user("admin", "x", "admin")
    port = free_port()
    for args in (["ps"], ["cancel", "web:chat"]):
        r = kakoclaw(data, port, *args)
        assert r.returncode == 1
        assert f"not running at http://127.0.0.1:{port}" in r.stderr


def test_ps_without_an_initialised_data_dir(tmp_path):
    data = tmp_path / "never-started"
    for args in (["ps"], ["cancel", "web:chat"]):
        r = kakoclaw(data, free_port(), *args)
        assert r.returncode == 1 and "no secret" in r.stderr and "KAKOCLAW_STORAGE_PATH" in r.stderr
    assert not data.exists()  # the commands create nothing


def test_ps_against_something_else_on_the_port(tmp_path):
    data = tmp_path / "data"
    load_or_create_secret(data)
    with Store.open(data) as store:
        store.create_user("admin", "x", "admin")
    # Something else listens on the port: the standard library's HTTP server.
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail("http.server did not start")
                time.sleep(0.1)
        r = kakoclaw(data, port, "ps")
        assert r.returncode == 1 and "404" in r.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
