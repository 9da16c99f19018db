"""File tools: what they do inside the workspace, and that every way out is refused."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agent_runner.protocol import Limits
from agent_runner.tools import ToolContext, ToolError, all_tools, schema_of
from agent_runner.tools.files import READ_LIMIT_BYTES
from tests.fakes.runner import make_spec, run_runner

FILE_TOOLS = ["read_file", "write_file", "edit_file", "append_file", "list_dir"]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workspace, holding a file that must stay untouched."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("TOP SECRET\n")
    return out


def run(name: str, args: dict, workspace: Path) -> str:
    ctx = ToolContext(workspace=workspace, limits=Limits(), call_id="c1", on_output=lambda s, d: None)
    return asyncio.run(all_tools()[name].run(args, ctx))


def refused(name: str, args: dict, workspace: Path) -> str:
    with pytest.raises(ToolError) as info:
        run(name, args, workspace)
    return str(info.value)


def args_for(name: str, path: str) -> dict:
    return {
        "read_file": {"path": path},
        "write_file": {"path": path, "content": "pwned"},
        "edit_file": {"path": path, "old_text": "TOP", "new_text": "pwned"},
        "append_file": {"path": path, "content": "pwned"},
        "list_dir": {"path": path},
    }[name]


# -- escapes, for every file tool


@pytest.mark.parametrize("name", FILE_TOOLS)
def test_dotdot_escape_is_refused(ws, outside, name):
    target = "../outside" if name == "list_dir" else "../outside/secret.txt"
    message = refused(name, args_for(name, target), ws)
    assert "climbs out of the workspace" in message and "'..'" in message
    message = refused(name, args_for(name, "sub/../../outside/secret.txt"), ws)
    assert "climbs out" in message
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"


@pytest.mark.parametrize("name", FILE_TOOLS)
def test_absolute_path_outside_is_refused(ws, outside, name):
    target = str(outside) if name == "list_dir" else str(outside / "secret.txt")
    message = refused(name, args_for(name, target), ws)
    assert "outside the workspace" in message and "absolute" in message
    refused(name, args_for(name, "/etc/passwd" if name != "list_dir" else "/etc"), ws)
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"


@pytest.mark.parametrize("name", FILE_TOOLS)
def test_symlink_to_outside_is_refused(ws, outside, name):
    (ws / "link_dir").symlink_to(outside, target_is_directory=True)
    (ws / "link_file").symlink_to(outside / "secret.txt")
    for target in (("link_dir",) if name == "list_dir" else ("link_dir/secret.txt", "link_file")):
        message = refused(name, args_for(name, target), ws)
        assert "symbolic link" in message and "outside the workspace" in message
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


@pytest.mark.parametrize("name", FILE_TOOLS)
def test_home_and_empty_paths_are_refused(ws, name):
    assert "home directory" in refused(name, args_for(name, "~/x"), ws)
    if name != "list_dir":  # list_dir defaults to the workspace itself
        assert "non-empty string" in refused(name, args_for(name, ""), ws)


def test_dangling_symlink_to_outside_cannot_create_a_file(ws, outside):
    (ws / "dangling").symlink_to(outside / "new.txt")
    assert "symbolic link" in refused("write_file", {"path": "dangling", "content": "x"}, ws)
    assert not (outside / "new.txt").exists()


def test_paths_inside_are_fine_however_spelled(ws):
    (ws / "sub").mkdir()
    (ws / "inner_link").symlink_to(ws / "notes.txt")
    assert run("read_file", {"path": str(ws / "notes.txt")}, ws) == "alpha\nbeta\ngamma\n"
    assert run("read_file", {"path": "sub/../notes.txt"}, ws) == "alpha\nbeta\ngamma\n"
    assert run("read_file", {"path": "./inner_link"}, ws) == "alpha\nbeta\ngamma\n"


# -- read_file


def test_read_file_line_ranges(ws):
    (ws / "lines.txt").write_text("".join(f"line {i}\n" for i in range(1, 101)))
    out = run("read_file", {"path": "lines.txt", "offset": 10, "limit": 3}, ws)
    assert out.startswith("line 10\nline 11\nline 12\n")
    assert "continue with offset=13" in out
    assert run("read_file", {"path": "lines.txt", "offset": 99}, ws) == "line 99\nline 100\n"
    assert "past its end" in refused("read_file", {"path": "lines.txt", "offset": 500}, ws)
    assert "integer" in refused("read_file", {"path": "lines.txt", "offset": 0}, ws)


def test_read_file_size_limit(ws):
    line = "x" * 99 + "\n"
    (ws / "big.txt").write_text(line * (3 * READ_LIMIT_BYTES // 100))
    out = run("read_file", {"path": "big.txt"}, ws)
    assert len(out.encode()) < READ_LIMIT_BYTES + 500
    assert "continue with offset=" in out
    (ws / "one_line.txt").write_text("y" * (READ_LIMIT_BYTES * 2))
    out = run("read_file", {"path": "one_line.txt"}, ws)
    assert "only its start is shown" in out and len(out) < READ_LIMIT_BYTES + 500


def test_read_file_refuses_binary_directories_missing_and_fifos(ws):
    (ws / "blob.bin").write_bytes(b"\x7fELF\x00\x00\x01")
    assert "binary" in refused("read_file", {"path": "blob.bin"}, ws)
    (ws / "d").mkdir()
    assert "is a directory" in refused("read_file", {"path": "d"}, ws)
    assert "no such file" in refused("read_file", {"path": "missing.txt"}, ws)
    os.mkfifo(ws / "pipe")
    assert "not a regular file" in refused("read_file", {"path": "pipe"}, ws)  # and does not hang
    (ws / "empty.txt").write_text("")
    assert run("read_file", {"path": "empty.txt"}, ws) == "[empty file]"


# -- write_file, append_file


def test_write_file_creates_parents_and_overwrites(ws):
    assert run("write_file", {"path": "a/b/c.txt", "content": "héllo\n"}, ws) == "created a/b/c.txt (7 bytes)"
    assert (ws / "a/b/c.txt").read_text() == "héllo\n"
    assert "overwrote" in run("write_file", {"path": "a/b/c.txt", "content": "short"}, ws)
    assert (ws / "a/b/c.txt").read_text() == "short"
    assert "is a directory" in refused("write_file", {"path": "a", "content": "x"}, ws)
    assert "must be a string" in refused("write_file", {"path": "z.txt"}, ws)
    assert "a parent of" in refused("write_file", {"path": "notes.txt/inner", "content": "x"}, ws)


def test_append_file(ws):
    assert "appended 6 bytes to notes.txt (now 23 bytes)" == run("append_file", {"path": "notes.txt", "content": "delta\n"}, ws)
    assert (ws / "notes.txt").read_text() == "alpha\nbeta\ngamma\ndelta\n"
    run("append_file", {"path": "log/new.log", "content": "first\n"}, ws)
    assert (ws / "log/new.log").read_text() == "first\n"


# -- edit_file


def test_edit_file_replaces_exactly_one_match(ws):
    assert run("edit_file", {"path": "notes.txt", "old_text": "beta\n", "new_text": "BETA\n"}, ws) == (
        "edited notes.txt: replaced 1 occurrence"
    )
    assert (ws / "notes.txt").read_text() == "alpha\nBETA\ngamma\n"


def test_edit_file_ambiguity_and_replace_all(ws):
    (ws / "dup.txt").write_text("x = 1\nx = 1\ny = 2\n")
    message = refused("edit_file", {"path": "dup.txt", "old_text": "x = 1", "new_text": "x = 3"}, ws)
    assert "occurs 2 times" in message and "replace_all" in message
    assert (ws / "dup.txt").read_text() == "x = 1\nx = 1\ny = 2\n"
    out = run("edit_file", {"path": "dup.txt", "old_text": "x = 1", "new_text": "x = 3", "replace_all": True}, ws)
    assert "replaced 2 occurrences" in out
    assert (ws / "dup.txt").read_text() == "x = 3\nx = 3\ny = 2\n"


def test_edit_file_errors(ws):
    assert "not found" in refused("edit_file", {"path": "notes.txt", "old_text": "delta", "new_text": "x"}, ws)
    assert "must not be empty" in refused("edit_file", {"path": "notes.txt", "old_text": "", "new_text": "x"}, ws)
    assert "the same" in refused("edit_file", {"path": "notes.txt", "old_text": "beta", "new_text": "beta"}, ws)
    assert "no such file" in refused("edit_file", {"path": "nope.txt", "old_text": "a", "new_text": "b"}, ws)
    (ws / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    assert "not valid UTF-8" in refused("edit_file", {"path": "latin1.txt", "old_text": "caf", "new_text": "x"}, ws)


# -- list_dir


def test_list_dir(ws, outside):
    (ws / "src").mkdir()
    (ws / "src/main.py").write_text("print('hi')\n")
    (ws / "link").symlink_to(outside)
    out = run("list_dir", {}, ws)
    lines = out.splitlines()
    assert lines[0] == ".: 3 entries"
    assert lines[1] == "src/"  # directories first
    assert f"link -> {outside}" in lines and "notes.txt  (17 B)" in lines
    assert run("list_dir", {"path": "src"}, ws).splitlines()[1] == "main.py  (12 B)"
    (ws / "empty").mkdir()
    assert run("list_dir", {"path": "empty"}, ws) == "empty: [empty directory]"
    assert "use read_file" in refused("list_dir", {"path": "notes.txt"}, ws)
    assert "no such file" in refused("list_dir", {"path": "missing"}, ws)


def test_every_tool_has_a_json_schema():
    for name, tool in all_tools().items():
        schema = schema_of(tool)
        assert schema["type"] == "function" and schema["function"]["name"] == name
        params = schema["function"]["parameters"]
        assert params["type"] == "object" and isinstance(params["properties"], dict)
        assert set(params.get("required", [])) <= set(params["properties"])
        assert schema["function"]["description"]


def test_escape_through_the_runner_is_a_tool_error(ws, outside):
    """End to end: the offline model calls write_file with an escaping path."""
    spec = make_spec(ws, '/tool write_file {"path": "../outside/secret.txt", "content": "pwned"}')
    result = run_runner(spec)
    assert result.returncode == 0, result.stderr
    (res,) = result.of("tool_result")
    assert res["status"] == "error" and "climbs out of the workspace" in res["result"]
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"
