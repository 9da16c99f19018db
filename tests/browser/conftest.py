"""End-to-end fixtures: a real KakoClaw server on a loopback port, and Debian's Chromium
driven by Playwright (its own browser download is not used)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
STATIC_INDEX = ROOT / "supervisor" / "static" / "index.html"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("KAKOCLAW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "e2e-secret-password"

# Generous waits: CI runs these on two cores next to the server and its runners.
expect.set_options(timeout=15_000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kakoclaw() -> list[str]:
    exe = Path(sys.executable).with_name("kakoclaw")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "supervisor"]


def _ensure_frontend_built() -> None:
    frontend = ROOT / "frontend"
    stale = not STATIC_INDEX.exists() or any(
        p.stat().st_mtime > STATIC_INDEX.stat().st_mtime
        for p in [frontend / "index.html", *(frontend / "src").rglob("*")]
        if p.is_file()
    )
    if not stale:
        return
    if not (frontend / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=frontend, check=True)
    subprocess.run(["npm", "run", "build"], cwd=frontend, check=True, stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def running_server(port: int | None = None, data_dir: Path | None = None):
    """`kakoclaw serve` on a free port with a fresh data directory; stopped with SIGTERM.
    Given a port and a data directory, it starts again on them (a restarted server)."""
    _ensure_frontend_built()
    own_dir = data_dir is None
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="kakoclaw-e2e-", dir="/tmp"))
        os.chmod(data_dir, 0o711)  # runners (another user) reach their workspaces through it
    port = port or _free_port()
    env = {
        **os.environ,
        "KAKOCLAW_STORAGE_PATH": str(data_dir),
        "KAKOCLAW_WEB_HOST": "127.0.0.1",
        "KAKOCLAW_WEB_PORT": str(port),
        "KAKOCLAW_WEB_USERNAME": "admin",
        "KAKOCLAW_WEB_PASSWORD": PASSWORD,
        "KAKOCLAW_AGENTS_DEFAULTS_PROVIDER": "offline",
    }
    log_path = data_dir.parent / f"{data_dir.name}.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(_kakoclaw() + ["serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within 30 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield {"url": base, "username": "admin", "password": PASSWORD, "log": log_path, "port": port, "data_dir": data_dir, "proc": proc}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
            log_path.unlink(missing_ok=True)


@pytest.fixture(scope="package")
def server():
    """The server most tests share. Sign-ins are rate limited (5 a minute per address), so
    it is signed in to once over HTTP and pages get that token (see `logged_in`)."""
    with running_server() as srv:
        res = httpx.post(f"{srv['url']}/api/v1/auth/login", json={"username": srv["username"], "password": srv["password"]})
        res.raise_for_status()
        srv["token"] = res.json()["token"]
        srv["expires_at"] = res.json()["expires_at"]
        yield srv


@pytest.fixture(scope="package")
def browser():
    """Package-scoped: Playwright's sync API keeps an event loop running in this thread
    while it is open, which later tests' asyncio.run() would trip over."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser, server):
    ctx = browser.new_context(base_url=server["url"], viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context):
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def shoot():
    """Saves a screenshot under test-artifacts/screenshots/ for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, full_page: bool = False) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


def login_through_form(page, server) -> None:
    page.goto("/")
    page.get_by_test_id("login-username").fill(server["username"])
    page.get_by_test_id("login-password").fill(server["password"])
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("composer-input").wait_for()


def wait_connected(page) -> None:
    page.wait_for_selector('[data-testid="connection-status"][data-status="open"]')


@pytest.fixture
def logged_in(context, page, server):
    """A page signed in with the shared token (as if its sign-in had been kept)."""
    saved = json.dumps({"token": server["token"], "expires_at": _epoch_ms(server["expires_at"])})
    context.add_init_script(f"window.localStorage.setItem('kakoclaw.auth', {json.dumps(saved)});")
    page.goto("/#/chat")
    page.get_by_test_id("composer-input").wait_for()
    wait_connected(page)
    return page


def _epoch_ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
