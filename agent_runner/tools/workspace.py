"""Path confinement: every file tool resolves its paths here, inside the session's workspace.

A path is accepted when both its spelling and its real location (symbolic links followed)
lie inside the workspace. Refusals say which rule was broken, so the model can correct
itself: `..` that climbs out, an absolute path elsewhere, `~`, or a symbolic link whose
target is outside.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import ToolError


def workspace_root(workspace: Path | str) -> Path:
    """The workspace as a real, existing directory."""
    try:
        root = Path(workspace).resolve(strict=True)
    except (OSError, RuntimeError):
        raise ToolError(f"the workspace {str(workspace)!r} does not exist") from None
    if not root.is_dir():
        raise ToolError(f"the workspace {str(workspace)!r} is not a directory")
    return root


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def resolve_path(workspace: Path | str, path: object, *, arg: str = "path") -> Path:
    """The real path that `path` names inside the workspace, or a ToolError saying why not.

    Relative paths are taken from the workspace. The result has every symbolic link
    resolved; it need not exist yet (write_file creates files).
    """
    if not isinstance(path, str) or not path.strip():
        raise ToolError(f"'{arg}' must be a non-empty string (a path inside the workspace)")
    if "\x00" in path:
        raise ToolError(f"'{arg}' contains a NUL byte")
    root = workspace_root(workspace)
    if path == "~" or path.startswith("~/"):
        raise ToolError(
            f"{path!r} points into the home directory, which is outside the workspace; "
            "use a path relative to the workspace"
        )
    given = Path(path)
    candidate = given if given.is_absolute() else root / given
    lexical = Path(os.path.normpath(candidate))
    spelled_root = Path(os.path.abspath(workspace))
    if not (_inside(lexical, root) or _inside(lexical, spelled_root)):
        if given.is_absolute():
            raise ToolError(
                f"{path!r} is outside the workspace ({root}); absolute paths must lie inside it, "
                "or use a path relative to the workspace"
            )
        raise ToolError(f"{path!r} climbs out of the workspace through '..'; use a path inside the workspace")
    real = Path(os.path.realpath(candidate))
    if not _inside(real, root):
        raise ToolError(f"{path!r} goes through a symbolic link that points outside the workspace; refused")
    return real


def display_path(real: Path, workspace: Path | str) -> str:
    """How a resolved path is shown back to the model: relative to the workspace."""
    root = workspace_root(workspace)
    if real == root:
        return "."
    try:
        return real.relative_to(root).as_posix()
    except ValueError:
        return str(real)
