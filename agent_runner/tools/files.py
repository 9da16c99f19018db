"""File tools: read_file, write_file, edit_file, append_file, list_dir.

Every path goes through workspace.resolve_path, so no tool reads or writes outside the
session's workspace. Files are opened without following a final symbolic link and must be
regular files (a FIFO would block the runner). Blocking file work runs in a thread, so a
cancel is never held up by the disk.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from pathlib import Path

from .base import ToolContext, ToolError
from .workspace import display_path, resolve_path

READ_LIMIT_BYTES = 256 * 1024  # most that read_file returns in one call
WRITE_LIMIT_BYTES = 16 * 1024 * 1024  # most that write_file/append_file accept in one call
EDIT_LIMIT_BYTES = 8 * 1024 * 1024  # largest file edit_file rewrites
LIST_LIMIT_ENTRIES = 1000
BINARY_SNIFF_BYTES = 8192

_PATH_PROP = {"type": "string", "description": "path relative to the workspace (absolute paths must lie inside it)"}


def _os_error(exc: OSError, shown: str) -> ToolError:
    if isinstance(exc, FileNotFoundError):
        return ToolError(f"no such file or directory: {shown!r}")
    if isinstance(exc, IsADirectoryError):
        return ToolError(f"{shown!r} is a directory; use list_dir to see what it holds")
    if isinstance(exc, NotADirectoryError):
        return ToolError(f"a parent of {shown!r} is a file, not a directory")
    if isinstance(exc, PermissionError):
        return ToolError(f"permission denied: {shown!r}")
    if exc.errno == errno.ELOOP:
        return ToolError(f"{shown!r} is a symbolic link that changed while being opened; refused")
    if exc.errno == errno.ENXIO:
        return ToolError(f"{shown!r} is not a regular file")
    return ToolError(f"{shown!r}: {exc.strerror or exc}")


def _open_regular(real: Path, flags: int, shown: str) -> int:
    """Open a regular file without following a final symlink and without blocking on FIFOs."""
    try:
        fd = os.open(real, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        raise _os_error(exc, shown) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ToolError(f"{shown!r} is a directory; use list_dir to see what it holds")
        raise ToolError(f"{shown!r} is not a regular file")
    return fd


def _string_arg(args: dict, name: str, *, allow_empty: bool = True) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise ToolError(f"'{name}' must be a string")
    if not allow_empty and not value:
        raise ToolError(f"'{name}' must not be empty")
    return value


def _int_arg(args: dict, name: str, default: int | None, minimum: int) -> int | None:
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ToolError(f"'{name}' must be an integer >= {minimum}")
    return value


def _encoded(content: str, what: str) -> bytes:
    data = content.encode("utf-8", "surrogatepass")
    if len(data) > WRITE_LIMIT_BYTES:
        raise ToolError(f"{what} is {len(data)} bytes; the limit is {WRITE_LIMIT_BYTES} bytes per call")
    return data


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


class ReadFileTool:
    name = "read_file"
    description = (
        "Read a text file from the workspace. Returns at most "
        f"{READ_LIMIT_BYTES // 1024} KiB per call; for longer files pass `offset` (first line, "
        "1-based) and `limit` (number of lines) to read on."
    )
    parameters = {
        "type": "object",
        "properties": {
            "path": _PATH_PROP,
            "offset": {"type": "integer", "minimum": 1, "description": "first line to return, 1-based (default 1)"},
            "limit": {"type": "integer", "minimum": 1, "description": "most lines to return (default: as many as fit)"},
        },
        "required": ["path"],
        "additionalProperties": False,
    }

    async def run(self, args: dict, ctx: ToolContext) -> str:
        real = resolve_path(ctx.workspace, args.get("path"))
        shown = display_path(real, ctx.workspace)
        offset = _int_arg(args, "offset", 1, 1)
        limit = _int_arg(args, "limit", None, 1)
        return await asyncio.to_thread(self._read, real, shown, offset or 1, limit)

    def _read(self, real: Path, shown: str, offset: int, limit: int | None) -> str:
        fd = _open_regular(real, os.O_RDONLY, shown)
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(BINARY_SNIFF_BYTES)
            if b"\x00" in head:
                raise ToolError(f"{shown!r} looks like a binary file ({_human(size)}); read_file reads text")
            if not head:
                return "[empty file]"
            f.seek(0)
            if offset == 1 and limit is None and size <= READ_LIMIT_BYTES:
                return f.read(READ_LIMIT_BYTES).decode("utf-8", "replace")
            return self._read_lines(f, shown, size, offset, limit)

    @staticmethod
    def _read_lines(f, shown: str, size: int, offset: int, limit: int | None) -> str:  # type: ignore[no-untyped-def]
        kept: list[bytes] = []
        used = 0
        line_no = 0
        more = False
        cut_line = False
        for line in f:
            line_no += 1
            if line_no < offset:
                continue
            if limit is not None and len(kept) >= limit:
                more = True
                break
            if used + len(line) > READ_LIMIT_BYTES:
                if not kept:  # one line longer than the whole budget: return its start
                    kept.append(line[:READ_LIMIT_BYTES])
                    cut_line = True
                more = True
                break
            kept.append(line)
            used += len(line)
        if not kept:
            if line_no < offset:
                raise ToolError(f"{shown!r} has {line_no} lines; offset {offset} is past its end")
            return "[no lines in that range]"
        text = b"".join(kept).decode("utf-8", "replace")
        last = offset + len(kept) - 1
        if cut_line:
            return text + f"\n[line {offset} is longer than {READ_LIMIT_BYTES} bytes; only its start is shown]"
        if more:
            if not text.endswith("\n"):
                text += "\n"
            return text + (
                f"[showing lines {offset}-{last} of {shown} ({_human(size)}); "
                f"continue with offset={last + 1}]"
            )
        return text


class WriteFileTool:
    name = "write_file"
    description = (
        "Create or overwrite a file in the workspace with the given content. Missing parent "
        "directories are created."
    )
    parameters = {
        "type": "object",
        "properties": {
            "path": _PATH_PROP,
            "content": {"type": "string", "description": "the complete new content of the file"},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    }

    async def run(self, args: dict, ctx: ToolContext) -> str:
        real = resolve_path(ctx.workspace, args.get("path"))
        shown = display_path(real, ctx.workspace)
        data = _encoded(_string_arg(args, "content"), "content")
        return await asyncio.to_thread(self._write, real, shown, data)

    @staticmethod
    def _write(real: Path, shown: str, data: bytes) -> str:
        existed = real.exists()
        _make_parents(real, shown)
        fd = _open_regular(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, shown)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return f"{'overwrote' if existed else 'created'} {shown} ({len(data)} bytes)"


class AppendFileTool:
    name = "append_file"
    description = "Append content to the end of a file in the workspace, creating the file if it does not exist."
    parameters = {
        "type": "object",
        "properties": {
            "path": _PATH_PROP,
            "content": {"type": "string", "description": "text to add at the end of the file"},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    }

    async def run(self, args: dict, ctx: ToolContext) -> str:
        real = resolve_path(ctx.workspace, args.get("path"))
        shown = display_path(real, ctx.workspace)
        data = _encoded(_string_arg(args, "content"), "content")
        return await asyncio.to_thread(self._append, real, shown, data)

    @staticmethod
    def _append(real: Path, shown: str, data: bytes) -> str:
        _make_parents(real, shown)
        fd = _open_regular(real, os.O_WRONLY | os.O_CREAT | os.O_APPEND, shown)
        with os.fdopen(fd, "ab") as f:
            f.write(data)
            f.flush()
            size = os.fstat(f.fileno()).st_size
        return f"appended {len(data)} bytes to {shown} (now {size} bytes)"


class EditFileTool:
    name = "edit_file"
    description = (
        "Edit a text file in the workspace by replacing `old_text` with `new_text`. `old_text` must "
        "match the file exactly (whitespace included) and occur exactly once, unless `replace_all` "
        "is true. Include enough surrounding lines to make it unique."
    )
    parameters = {
        "type": "object",
        "properties": {
            "path": _PATH_PROP,
            "old_text": {"type": "string", "description": "the exact text to find"},
            "new_text": {"type": "string", "description": "the text to put in its place"},
            "replace_all": {"type": "boolean", "description": "replace every occurrence (default false)"},
        },
        "required": ["path", "old_text", "new_text"],
        "additionalProperties": False,
    }

    async def run(self, args: dict, ctx: ToolContext) -> str:
        real = resolve_path(ctx.workspace, args.get("path"))
        shown = display_path(real, ctx.workspace)
        old = _string_arg(args, "old_text", allow_empty=False)
        new = _string_arg(args, "new_text")
        replace_all = args.get("replace_all", False)
        if not isinstance(replace_all, bool):
            raise ToolError("'replace_all' must be true or false")
        if old == new:
            raise ToolError("old_text and new_text are the same; nothing to change")
        return await asyncio.to_thread(self._edit, real, shown, old, new, replace_all)

    @staticmethod
    def _edit(real: Path, shown: str, old: str, new: str, replace_all: bool) -> str:
        fd = _open_regular(real, os.O_RDWR, shown)
        with os.fdopen(fd, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            if size > EDIT_LIMIT_BYTES:
                raise ToolError(f"{shown!r} is {_human(size)}; edit_file edits files up to {_human(EDIT_LIMIT_BYTES)}")
            raw = f.read()
            if b"\x00" in raw[:BINARY_SNIFF_BYTES]:
                raise ToolError(f"{shown!r} looks like a binary file; edit_file edits text")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ToolError(f"{shown!r} is not valid UTF-8 text; edit_file would corrupt it") from None
            count = text.count(old)
            if count == 0:
                raise ToolError(
                    f"old_text was not found in {shown}; it must match exactly, whitespace and "
                    "line breaks included (read the file first)"
                )
            if count > 1 and not replace_all:
                raise ToolError(
                    f"old_text occurs {count} times in {shown}; add surrounding text to make it "
                    "unique, or set replace_all to replace every occurrence"
                )
            updated = text.replace(old, new) if replace_all else text.replace(old, new, 1)
            data = updated.encode("utf-8")
            f.seek(0)
            f.write(data)
            f.truncate()
        done = count if replace_all else 1
        return f"edited {shown}: replaced {done} occurrence{'s' if done != 1 else ''}"


class ListDirTool:
    name = "list_dir"
    description = (
        "List a directory of the workspace: sub-directories end with '/', files show their size, "
        "symbolic links show their target."
    )
    parameters = {
        "type": "object",
        "properties": {
            "path": {**_PATH_PROP, "description": "directory relative to the workspace (default: the workspace itself)"},
        },
        "additionalProperties": False,
    }

    async def run(self, args: dict, ctx: ToolContext) -> str:
        path = args.get("path")
        if path is None or (isinstance(path, str) and not path.strip()):
            path = "."
        real = resolve_path(ctx.workspace, path)
        shown = display_path(real, ctx.workspace)
        return await asyncio.to_thread(self._list, real, shown)

    @staticmethod
    def _list(real: Path, shown: str) -> str:
        try:
            with os.scandir(real) as it:
                entries = sorted(it, key=lambda e: (not _is_dir(e), e.name))
        except OSError as exc:
            if isinstance(exc, NotADirectoryError):
                raise ToolError(f"{shown!r} is a file, not a directory; use read_file") from None
            raise _os_error(exc, shown) from None
        if not entries:
            return f"{shown}: [empty directory]"
        lines = [f"{shown}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"]
        lines.extend(_describe(e) for e in entries[:LIST_LIMIT_ENTRIES])
        if len(entries) > LIST_LIMIT_ENTRIES:
            lines.append(f"[{len(entries) - LIST_LIMIT_ENTRIES} more entries not shown]")
        return "\n".join(lines)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _describe(entry: os.DirEntry) -> str:
    try:
        if entry.is_symlink():
            return f"{entry.name} -> {os.readlink(entry.path)}"
        if entry.is_dir(follow_symlinks=False):
            return f"{entry.name}/"
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            return f"{entry.name}  ({_human(st.st_size)})"
        return f"{entry.name}  (special file)"
    except OSError:
        return f"{entry.name}  (unreadable)"


def _make_parents(real: Path, shown: str) -> None:
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ToolError(f"a parent of {shown!r} is a file, not a directory") from None
    except OSError as exc:
        raise _os_error(exc, shown) from None
