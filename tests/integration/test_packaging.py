"""Packaging and deployment: the Dockerfile, the compose file, the systemd unit, the wheel.

No container engine runs here, so the image is checked piece by piece: the Dockerfile parses
and has what a deployment relies on; every file it copies is in the build context; the wheel
built from exactly what the Dockerfile copies, installed in a clean virtual environment,
runs the image's command, answers the image's health check and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx
import pytest
import websockets
import yaml
from dockerfile_parse import DockerfileParser

from supervisor.config import Settings, parse_duration
from tests.server_helpers import ADMIN_PASSWORD, free_port, ws_events_until

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
UNIT = ROOT / "deploy" / "kakoclaw.service"
CANCEL_GRACE_S = Settings().cancel_grace
ORIGINAL_ENV_NAMES = {
    "KAKOCLAW_WEB_USERNAME",
    "KAKOCLAW_WEB_PASSWORD",
    "KAKOCLAW_WEB_PORT",
    "KAKOCLAW_AGENTS_DEFAULTS_PROVIDER",
    "KAKOCLAW_AGENTS_DEFAULTS_MODEL",
    "KAKOCLAW_PROVIDERS_OPENAI_API_KEY",
    "KAKOCLAW_PROVIDERS_OPENAI_API_BASE",
}


# -- reading the Dockerfile ---------------------------------------------------------------


def stages() -> list[dict]:
    """The Dockerfile's stages: {name, image, instructions: [(INSTRUCTION, value)]}."""
    parser = DockerfileParser(path=str(DOCKERFILE))
    images = parser.parent_images  # FROM images with the global ARGs substituted
    out: list[dict] = []
    for item in parser.structure:
        ins, value = item["instruction"], item["value"]
        if ins == "FROM":
            words = value.split()
            name = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else None
            out.append({"name": name, "image": images[len(out)], "instructions": []})
        elif out and ins != "COMMENT":
            out[-1]["instructions"].append((ins, value))
    return out


def values(stage: dict, instruction: str) -> list[str]:
    return [v for i, v in stage["instructions"] if i == instruction]


def exec_form(value: str) -> list[str]:
    value = value.strip()
    return json.loads(value) if value.startswith("[") else ["/bin/sh", "-c", value]


def copy_args(value: str) -> tuple[dict[str, str], list[str], str]:
    """COPY/ADD value -> (flags, sources, destination)."""
    value = value.strip()
    flags: dict[str, str] = {}
    words = shlex.split(value)
    while words and words[0].startswith("--"):
        key, _, val = words.pop(0)[2:].partition("=")
        flags[key] = val
    if words and words[0].startswith("["):
        words = json.loads(" ".join(words))
    return flags, words[:-1], words[-1]


def final_env(stage: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in values(stage, "ENV"):
        for word in shlex.split(value):
            key, _, val = word.partition("=")
            env[key] = val
    return env


def healthcheck_command(stage: dict) -> list[str]:
    [value] = values(stage, "HEALTHCHECK")
    _, _, cmd = value.partition("CMD")
    return exec_form(cmd)


# -- .dockerignore, with Docker's rules (path or any parent matches; `!` re-includes) --------


def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out, i = out + "[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]", end + 1
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out)


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def excluded(rel: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    parts = Path(rel).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negate
    return result


def context_files(source: str, rules) -> list[Path]:
    """Files of the build context that `COPY <source>` sends (source relative to the root)."""
    path = ROOT / source
    candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [p for p in candidates if not excluded(str(p.relative_to(ROOT)), rules)]


# -- 1. the Dockerfile --------------------------------------------------------------------


def test_dockerfile_parses_and_has_what_a_deployment_needs():
    parser = DockerfileParser(path=str(DOCKERFILE))
    assert parser.is_multistage
    all_stages = stages()
    assert len(all_stages) >= 3
    frontend = next(s for s in all_stages if s["image"].startswith("node:20"))
    assert any("npm ci" in v for v in values(frontend, "RUN"))
    assert any("npm run build" in v for v in values(frontend, "RUN"))
    final = all_stages[-1]
    assert all_stages[1]["image"] == final["image"] == "python:3.11-slim"
    builder = all_stages[1]
    assert any("pip wheel" in v for v in values(builder, "RUN"))

    # runs as a non-root user
    users = values(final, "USER")
    assert users, "the final stage has no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    # the data directory is a volume, and the server stores its data there
    env = final_env(final)
    volumes = [p for v in values(final, "VOLUME") for p in (json.loads(v) if v.startswith("[") else v.split())]
    assert env.get("KAKOCLAW_STORAGE_PATH") in volumes
    # reachable from outside the container, on the published port
    assert env.get("KAKOCLAW_WEB_HOST") == "0.0.0.0"
    assert "18880" in " ".join(values(final, "EXPOSE")).split()
    assert env.get("KAKOCLAW_WEB_PORT", "18880") == "18880"
    assert values(final, "STOPSIGNAL") == ["SIGTERM"]
    # health check without curl, on the health route
    check = healthcheck_command(final)
    assert check[:2] == ["python", "-c"] and "/api/v1/health" in check[2]
    # tini is the init (installed), and the command is the console script
    [entrypoint] = values(final, "ENTRYPOINT")
    assert exec_form(entrypoint) == ["tini", "--"]
    installs = " ".join(values(final, "RUN"))
    assert re.search(r"apt-get install[^&]*\btini\b", installs)
    assert re.search(r"apt-get install[^&]*\butil-linux\b", installs)  # setpriv
    [cmd] = values(final, "CMD")
    assert exec_form(cmd) == ["kakoclaw", "serve"]


# -- 2. every copied file is in the build context -----------------------------------------


def test_every_copied_path_exists_and_is_not_dockerignored():
    rules = dockerignore_rules()
    copied = 0
    for stage in stages():
        for ins, value in stage["instructions"]:
            if ins not in ("COPY", "ADD"):
                continue
            flags, sources, _ = copy_args(value)
            if "from" in flags:
                continue
            for source in sources:
                assert not source.startswith(("http://", "https://", "git@")), source
                assert (ROOT / source).exists(), f"{ins} {source}: not in the repository"
                assert context_files(source, rules), f"{ins} {source}: excluded by .dockerignore"
                copied += 1
    assert copied >= 4

    # what the builds read is in the context; what must stay out is out
    for needed in ("pyproject.toml", "frontend/package-lock.json", "frontend/vite.config.js",
                   "frontend/index.html", "supervisor/__init__.py", "agent_runner/__main__.py"):
        assert not excluded(needed, rules), needed
    for kept_out in (".git/config", ".venv/bin/python", "frontend/node_modules/vue/package.json",
                     "supervisor/static/index.html", "supervisor/__pycache__/app.cpython-311.pyc",
                     "docker/.env", "data/jwt_secret", "tests/conftest.py"):
        assert excluded(kept_out, rules), kept_out


def test_built_frontend_lands_where_the_wheel_stage_copies_it_from():
    all_stages = stages()
    frontend = next(s for s in all_stages if s["image"].startswith("node:20"))
    workdir = values(frontend, "WORKDIR")[-1]
    out_dir = re.search(r"outDir:.*?['\"]([^'\"]+)['\"]", (ROOT / "frontend" / "vite.config.js").read_text()).group(1)
    built = os.path.normpath(os.path.join(workdir, out_dir))
    froms = [copy_args(v) for s in all_stages for i, v in s["instructions"] if i == "COPY"]
    sources = [os.path.normpath(src) for flags, srcs, _ in froms if flags.get("from") == frontend["name"] for src in srcs]
    assert built in sources, f"vite writes to {built}; the wheel stage copies {sources}"
    # ... and into the package directory that package-data covers
    [(flags, _, dest)] = [c for c in froms if c[0].get("from") == frontend["name"]]
    assert os.path.normpath(dest) == "supervisor/static"


# -- 3. compose ---------------------------------------------------------------------------


def test_compose_file_uses_the_original_names_a_volume_and_a_long_stop_grace():
    compose = yaml.safe_load(COMPOSE.read_text())
    [(name, service)] = compose["services"].items()
    build = service["build"]
    assert (COMPOSE.parent / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE

    env = service["environment"]
    assert isinstance(env, dict)
    assert ORIGINAL_ENV_NAMES <= env.keys()
    settings = {"KAKOCLAW_" + n.upper() for n in Settings.__dataclass_fields__}
    provider = re.compile(r"KAKOCLAW_PROVIDERS_[A-Z0-9]+_API_(KEY|BASE)")
    for var in env:
        assert var in settings or provider.fullmatch(var), f"{var} is not a setting"
    assert str(env["KAKOCLAW_WEB_PORT"]) == "18880"

    assert "127.0.0.1:18880:18880" in [str(p) for p in service["ports"]]
    mounts = [str(v).split(":") for v in service["volumes"]]
    final = stages()[-1]
    volume_dirs = json.loads(values(final, "VOLUME")[0])
    assert any(src in (compose.get("volumes") or {}) and dst in volume_dirs for src, dst, *_ in mounts)
    assert service["restart"] in ("unless-stopped", "always", "on-failure")
    assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert parse_duration(str(service["stop_grace_period"])) > CANCEL_GRACE_S + 5


# -- the systemd unit ---------------------------------------------------------------------


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str
    unit.read_string(UNIT.read_text())
    return unit


def test_systemd_unit_delegates_its_cgroup_and_stops_cleanly():
    service = read_unit()["Service"]
    assert service["Delegate"] == "yes"
    assert service["KillMode"] in ("mixed", "process")
    assert service.get("KillSignal", "SIGTERM") == "SIGTERM"
    assert parse_duration(service["TimeoutStopSec"].replace("min", "m")) > CANCEL_GRACE_S + 5
    assert service["User"] not in ("root", "0")
    assert service["EnvironmentFile"].lstrip("-").startswith("/")
    state = service["StateDirectory"]
    assert f"KAKOCLAW_STORAGE_PATH=/var/lib/{state}" in service["Environment"]
    assert shlex.split(service["ExecStart"])[-2:] == ["kakoclaw", "serve"] or service["ExecStart"].endswith("/kakoclaw serve")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    # verify also checks that ExecStart exists: point it at this checkout's console script
    exe = Path(sys.executable).parent / "kakoclaw"
    assert exe.exists(), "the kakoclaw console script is not installed in this environment"
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={exe}", UNIT.read_text(), flags=re.M)
    (tmp_path / "kakoclaw.service").write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "kakoclaw.service")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "kakoclaw.service" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


# -- 4. the image's command, from a freshly built wheel, in a clean virtual environment -----


def build_context_copy(dest: Path) -> None:
    """What the wheel stage sees: its COPYs from the context (minus .dockerignore), and the
    frontend stage's output (the source tree's built supervisor/static stands in for it)."""
    rules = dockerignore_rules()
    builder = next(s for s in stages() if any("pip wheel" in v for v in values(s, "RUN")))
    for value in values(builder, "COPY"):
        flags, sources, target = copy_args(value)
        if "from" in flags:
            continue
        for source in sources:
            base = ROOT / source
            for f in context_files(source, rules):
                if base.is_file():
                    to = dest / target / f.name if target.endswith("/") else dest / target
                else:
                    to = dest / target / f.relative_to(base)
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, to)
    static = ROOT / "supervisor" / "static"
    if (static / "index.html").exists():
        shutil.copytree(static, dest / "supervisor" / "static")


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.timeout(900)
def test_image_command_serves_from_a_fresh_wheel_in_a_clean_venv():
    final = stages()[-1]
    compose = yaml.safe_load(COMPOSE.read_text())
    stop_grace = parse_duration(str(next(iter(compose["services"].values()))["stop_grace_period"]))
    command = exec_form(values(final, "CMD")[-1])

    tmp = Path(tempfile.mkdtemp(prefix="kakoclaw-pkg-", dir="/tmp"))
    os.chmod(tmp, 0o711)  # as root, runners run as another user: they must reach the venv
    proc = None
    try:
        # the wheel, from exactly what the image build copies
        src = tmp / "src"
        build_context_copy(src)
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
             "-w", str(tmp / "wheels"), str(src)], timeout=300)
        [wheel] = (tmp / "wheels").glob("kakoclaw-*.whl")
        names = set(zipfile.ZipFile(wheel).namelist())
        assert {"supervisor/__main__.py", "supervisor/app.py", "agent_runner/__main__.py",
                "agent_runner/protocol.py"} <= names
        if (ROOT / "supervisor" / "static" / "index.html").exists():
            assert "supervisor/static/index.html" in names
            assert any(n.startswith("supervisor/static/assets/") for n in names)
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "kakoclaw = supervisor.__main__:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

        # a clean virtual environment with only the wheel and its dependencies
        venv = tmp / "venv"
        run([sys.executable, "-m", "venv", str(venv)], timeout=120)
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel)],
            timeout=600)
        where = run([str(venv / "bin" / "python"), "-c", "import supervisor, agent_runner; "
                     "print(supervisor.__file__); print(agent_runner.__file__)"], timeout=60, cwd=tmp)
        assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout

        # the image's command, with the image's settings (but only on loopback here)
        data = tmp / "data"
        port = free_port()
        env = {k: v for k, v in final_env(final).items() if k.startswith("KAKOCLAW_")}
        env.update({
            "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp),
            "LANG": "C.UTF-8",
            "KAKOCLAW_STORAGE_PATH": str(data),
            "KAKOCLAW_WEB_HOST": "127.0.0.1",
            "KAKOCLAW_WEB_PORT": str(port),
            "KAKOCLAW_WEB_PASSWORD": ADMIN_PASSWORD,
        })
        executable = shutil.which(command[0], path=env["PATH"])
        assert executable == str(venv / "bin" / command[0])
        log_path = tmp / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([executable, *command[1:]], cwd=tmp, env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"

        def log_text() -> str:
            return log_path.read_text(errors="replace")

        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(url + "/api/v1/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None, f"no answer from {command} (exit {proc.poll()}):\n{log_text()}"
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "ok"
        assert body["containment"]["mode"] in ("cgroup", "pgroup") and body["containment"]["reason"]

        # the image's HEALTHCHECK command, as docker would run it
        check = healthcheck_command(final)
        result = subprocess.run([shutil.which(check[0], path=env["PATH"]), *check[1:]], env=env,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr

        # the web interface comes from the wheel
        if (ROOT / "supervisor" / "static" / "index.html").exists():
            page = httpx.get(url + "/", timeout=10)
            assert page.status_code == 200 and '<div id="app"' in page.text, page.text[:300]

        # an execution runs from the installed package; one is still running at SIGTERM
        token = httpx.post(url + "/api/v1/auth/login",
                           json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=10).json()["token"]

        async def chat() -> list[dict]:
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws/chat?token={token}") as ws:
                await ws.send(json.dumps({"type": "message", "session_id": "web:chat:pkg", "content": "hi"}))
                done = await ws_events_until(ws, lambda e: e["type"] == "ready", timeout=60)
                await ws.send(json.dumps({"type": "message", "session_id": "web:chat:long", "content": "/sleep 60"}))
                await ws_events_until(ws, lambda e: e["type"] == "stream", timeout=60)
                return done

        events = asyncio.run(chat())
        end = next(e for e in events if e["type"] == "stream_end")
        assert "hi" in end["content"] and "error" not in end, events

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=stop_grace)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not exit within the stop grace ({stop_grace:.0f} s):\n{log_text()}")
        took = time.monotonic() - started
        assert code == 0, f"exit status {code} after SIGTERM:\n{log_text()}"
        assert took < stop_grace
        assert re.search(r"execution \S+ session=web:chat:long .*state=interrupted", log_text()), log_text()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# -- logs ---------------------------------------------------------------------------------


def test_json_logs_are_one_object_a_line_and_record_how_executions_end(start_server):
    server = start_server(log_format="json")
    token = server.login()

    async def chat() -> None:
        async with websockets.connect(f"{server.ws_url}?token={token}") as ws:
            await ws.send(json.dumps({"type": "message", "session_id": "web:chat:x", "content": "hi"}))
            await ws_events_until(ws, lambda e: e["type"] == "ready")
            await ws.send(json.dumps({"type": "message", "session_id": "web:chat:y", "content": "/sleep 30"}))
            await ws_events_until(ws, lambda e: e["type"] == "stream")
            await ws.send(json.dumps({"type": "cancel", "session_id": "web:chat:y"}))
            await ws_events_until(ws, lambda e: e["type"] == "ready")

    asyncio.run(chat())
    assert server.stop() == 0

    lines = [line for line in server.log().splitlines() if line.strip()]
    entries = []
    for line in lines:
        entry = json.loads(line)  # every line is one JSON object
        assert isinstance(entry, dict) and {"ts", "level", "msg"} <= entry.keys(), line
        entries.append(entry)
    messages = [e["msg"] for e in entries]

    assert any(re.match(r"containment: (cgroup|pgroup) \(.+\)", m) for m in messages), messages
    for session in ("web:chat:x", "web:chat:y"):
        assert any(re.match(rf"execution \S+ started session={session} ", m) for m in messages), messages
    done = [m for m in messages if re.match(r"execution \S+ session=web:chat:x ", m)]
    assert len(done) == 1 and "state=completed exit_code=0 signal=None cancel_latency_ms=None" in done[0], done
    canceled = [m for m in messages if re.match(r"execution \S+ session=web:chat:y ", m)]
    assert len(canceled) == 1, canceled
    fields = dict(re.findall(r"(\w+)=(\S+)", canceled[0]))
    assert fields["state"] in ("canceled", "killed") and fields["signal"] in ("SIGTERM", "SIGKILL"), canceled
    assert float(fields["cancel_latency_ms"]) >= 0
