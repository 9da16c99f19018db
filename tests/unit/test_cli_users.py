"""`kakoclaw user add|passwd`, run as real subprocesses against a temporary data directory."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supervisor.auth import verify_password
from supervisor.store import Store

ROOT = Path(__file__).resolve().parents[2]


def kakoclaw(data: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAKOCLAW_STORAGE_PATH": str(data)}
    env.pop("KAKOCLAW_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def user(data: Path, name: str):
    with Store.open(data) as store:
        return store.get_user_by_name(name)


@pytest.fixture
def data(tmp_path) -> Path:
    return tmp_path / "data"


def test_user_add_with_password_from_stdin(data):
    r = kakoclaw(data, "user", "add", "bob", "--password-stdin", stdin="bob's password\n")
    assert r.returncode == 0, r.stderr
    assert "bob" in r.stdout
    bob = user(data, "bob")
    assert bob.role == "user"
    assert verify_password(bob.password_hash, "bob's password")
    assert (data / "kakoclaw.db").exists() and (data.stat().st_mode & 0o777) == 0o700

    r = kakoclaw(data, "user", "add", "root2", "--role", "admin", "--password-stdin", stdin="admin password")
    assert r.returncode == 0, r.stderr
    assert user(data, "root2").role == "admin"


def test_user_add_refusals(data):
    assert kakoclaw(data, "user", "add", "bob", "--password-stdin", stdin="first password\n").returncode == 0
    taken = kakoclaw(data, "user", "add", "bob", "--password-stdin", stdin="second password\n")
    assert taken.returncode == 1 and "already exists" in taken.stderr
    assert verify_password(user(data, "bob").password_hash, "first password")

    short = kakoclaw(data, "user", "add", "carol", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    bad_name = kakoclaw(data, "user", "add", "has space", "--password-stdin", stdin="long enough\n")
    assert bad_name.returncode == 1 and "username" in bad_name.stderr
    bad_role = kakoclaw(data, "user", "add", "dave", "--role", "root", "--password-stdin", stdin="long enough\n")
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr
    no_tty = kakoclaw(data, "user", "add", "erin")
    assert no_tty.returncode == 1 and "--password-stdin" in no_tty.stderr
    for name in ("carol", "has space", "dave", "erin"):
        assert user(data, name) is None


def test_user_passwd_changes_password_and_revokes_tokens(data):
    assert kakoclaw(data, "user", "add", "bob", "--password-stdin", stdin="old password\n").returncode == 0
    before = user(data, "bob")
    r = kakoclaw(data, "user", "passwd", "bob", "--password-stdin", stdin="new password\n")
    assert r.returncode == 0, r.stderr
    after = user(data, "bob")
    assert verify_password(after.password_hash, "new password")
    assert not verify_password(after.password_hash, "old password")
    assert after.token_version == before.token_version + 1

    missing = kakoclaw(data, "user", "passwd", "nobody", "--password-stdin", stdin="new password\n")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr
    short = kakoclaw(data, "user", "passwd", "bob", "--password-stdin", stdin="tiny\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    assert verify_password(user(data, "bob").password_hash, "new password")


def test_users_added_while_a_server_holds_the_database_open(data):
    with Store.open(data) as server_store:
        assert kakoclaw(data, "user", "add", "live", "--password-stdin", stdin="live password\n").returncode == 0
        assert server_store.get_user_by_name("live") is not None


def _run_in_pty(data: Path, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run the CLI with a terminal as stdin and controlling tty, answering each prompt."""
    env = {**os.environ, "KAKOCLAW_STORAGE_PATH": str(data)}
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "supervisor", *args], env)
    output = b""
    pending = list(answers)
    answered = 0
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output[answered:].endswith(b": "):  # a new prompt, waiting
                os.write(fd, pending.pop(0).encode() + b"\n")
                answered = len(output)
    finally:
        status = _wait(pid, timeout=5)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def _wait(pid: int, timeout: float) -> int:
    """The child's wait status; it is killed if it has not exited within `timeout`."""
    end = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(0.05)


def test_user_add_prompts_twice_on_a_terminal(data):
    code, out = _run_in_pty(data, ["user", "add", "tty-user"], ["typed password", "typed password"])
    assert code == 0, out
    assert "Password:" in out and "Repeat password:" in out
    assert "typed password" not in out  # not echoed
    assert verify_password(user(data, "tty-user").password_hash, "typed password")

    code, out = _run_in_pty(data, ["user", "passwd", "tty-user"], ["one password", "another one"])
    assert code == 1 and "do not match" in out
    assert verify_password(user(data, "tty-user").password_hash, "typed password")
