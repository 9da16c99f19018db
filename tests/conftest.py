import os

import pytest

from supervisor.engine.containment.cgroup import CgroupMode


def _cgroup_usable() -> bool:
    ok, _ = CgroupMode.probe("pytest-probe")
    return ok


MODES = ["cgroup", "pgroup"]


@pytest.fixture(params=MODES)
def mode(request):
    """Each engine test runs in both containment modes."""
    if request.param == "cgroup" and not _cgroup_usable():
        pytest.fail("cgroup v2 is not writable here: run the tests as root on a host with cgroup v2")
    return request.param


@pytest.fixture
def data_dir():
    """A storage dir the runner user can traverse to its workspaces (pytest's tmp_path is 0700)."""
    import shutil
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="kakoclaw-test-", dir="/tmp"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_server():
    """Factory: start_server(**env) -> a running Server (stopped and removed afterwards)."""
    from tests.server_helpers import Server, cleanup, free_port, new_data_dir

    started = []

    def factory(data_dir=None, **env):
        server = Server(data_dir or new_data_dir(), free_port(), {f"KAKOCLAW_{k.upper()}": str(v) for k, v in env.items()})
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        cleanup(server)


@pytest.fixture
def server(start_server):
    """A running server with the offline model; admin password in tests.server_helpers."""
    return start_server()


@pytest.fixture
def admin_token(server):
    return server.login()
