"""A real KakoClaw server in a subprocess on a free loopback port, and clients for it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "admin-pass-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    data_dir: Path
    port: int
    env: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    def start(self, timeout: float = 30) -> "Server":
        env = {
            **os.environ,
            "KAKOCLAW_STORAGE_PATH": str(self.data_dir),
            "KAKOCLAW_WEB_PORT": str(self.port),
            "KAKOCLAW_WEB_PASSWORD": ADMIN_PASSWORD,
            **self.env,
        }
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        r = httpx.post(self.url + "/api/v1/auth/login", json={"username": username, "password": password})
        r.raise_for_status()
        return r.json()["token"]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def add_user(self, admin_token: str, username: str, password: str = "user-pass-123", role: str = "user") -> str:
        with self.client(admin_token) as c:
            r = c.post("/api/v1/users", json={"username": username, "password": password, "role": role})
            assert r.status_code == 201, r.text
        return self.login(username, password)


def new_data_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="kakoclaw-srv-", dir="/tmp"))
    os.chmod(path, 0o711)
    return path


def cleanup(server: Server) -> None:
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)
    if server.log_path:
        server.log_path.unlink(missing_ok=True)


async def ws_events_until(ws, predicate, timeout: float = 30) -> list[dict]:
    """Read events from a websockets connection until predicate(event) is true."""
    import asyncio

    events = []
    async with asyncio.timeout(timeout):
        while True:
            ev = json.loads(await ws.recv())
            events.append(ev)
            if predicate(ev):
                return events
