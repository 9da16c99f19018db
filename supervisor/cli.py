"""The `kakoclaw` command: run the server, manage users, inspect and cancel executions.

    kakoclaw serve
    kakoclaw user add <name> [--role admin|user] [--password-stdin]
    kakoclaw user passwd <name> [--password-stdin]
    kakoclaw ps [--json]
    kakoclaw cancel <session-or-execution-id> [--force] [--grace S]

Settings come from the KAKOCLAW_* environment variables (and KAKOCLAW_CONFIG). `user`
works on the database under KAKOCLAW_STORAGE_PATH directly, with or without a running
server. `ps` and `cancel` ask the running server at KAKOCLAW_WEB_HOST:KAKOCLAW_WEB_PORT,
authenticating as an admin with a short-lived token signed with the data directory's
secret (so they need read access to that directory, like the server).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from .auth import (
    Authenticator,
    check_new_password,
    check_username,
    hash_password,
    read_secret,
    secret_path,
)
from .config import ConfigError, Settings, load_settings
from .store import ROLES, Store, StoreError, UsernameTaken, db_path, parse_time

PROG = "kakoclaw"
CLI_TOKEN_TTL_S = 300.0


class CliError(Exception):
    """A failure to report as `kakoclaw: <message>` with exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        settings = load_settings()
        return args.handler(settings, args) or 0
    except (CliError, ConfigError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Self-hosted web chat for an AI agent; every execution is its own process."
    )
    commands = parser.add_subparsers(title="commands", metavar="<command>")

    serve = commands.add_parser("serve", help="run the web server")
    serve.set_defaults(handler=cmd_serve)

    user = commands.add_parser("user", help="add users and set passwords (works on the data directory)")
    user_commands = user.add_subparsers(title="user commands", metavar="<user-command>", required=True)
    add = user_commands.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="user", help="default: user")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    add.set_defaults(handler=cmd_user_add)
    passwd = user_commands.add_parser("passwd", help="set a user's password (signs out their sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    passwd.set_defaults(handler=cmd_user_passwd)

    ps = commands.add_parser("ps", help="show running and queued executions with their processes")
    ps.add_argument("--json", action="store_true", help="print the server's JSON answer as it is")
    ps.set_defaults(handler=cmd_ps)

    cancel = commands.add_parser(
        "cancel", help="cancel an execution, or whatever runs in a session (exit status 1 if nothing was running)"
    )
    cancel.add_argument("target", metavar="session-or-execution-id")
    cancel.add_argument("--force", action="store_true", help="SIGKILL at once, without the grace period")
    cancel.add_argument("--grace", type=float, metavar="S", help="seconds between SIGTERM and SIGKILL")
    cancel.set_defaults(handler=cmd_cancel)
    return parser


# -- serve --------------------------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from .app import serve  # the web stack loads only for this command

    return serve(settings) or 0


# -- users --------------------------------------------------------------------------------


def _open_store(settings: Settings) -> Store:
    try:
        return Store.open(settings.data_dir)
    except PermissionError as exc:
        raise CliError(
            f"cannot open {db_path(settings.data_dir)}: {exc.strerror} (run as the user that runs the server)"
        ) from None
    except (OSError, StoreError) as exc:
        raise CliError(f"cannot open {db_path(settings.data_dir)}: {exc}") from None


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CliError("the passwords do not match")
    else:
        raise CliError("no terminal to ask for the password: pipe it in with --password-stdin")
    try:
        return check_new_password(password)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> int:
    try:
        name = check_username(args.name)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    with _open_store(settings) as store:
        if store.get_user_by_name(name) is not None:
            raise CliError(f"user {name!r} already exists (set a password with `{PROG} user passwd {name}`)")
        password = _read_password(args.password_stdin)
        try:
            store.create_user(name, hash_password(password), args.role)
        except UsernameTaken as exc:
            raise CliError(str(exc)) from None
    print(f"Added {args.role} {name!r}.")
    return 0


def cmd_user_passwd(settings: Settings, args: argparse.Namespace) -> int:
    with _open_store(settings) as store:
        user = store.get_user_by_name(args.name)
        if user is None:
            raise CliError(f"no user {args.name!r}")
        password = _read_password(args.password_stdin)
        store.update_user(user.id, password_hash=hash_password(password))
    print(f"Changed the password of {args.name!r}; their existing sessions are signed out.")
    return 0


# -- talking to the running server ----------------------------------------------------------


def _base_url(settings: Settings) -> str:
    host = settings.web_host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web_port}"


def _admin_token(settings: Settings) -> str:
    """A short-lived token for the first admin, signed with the data directory's secret.

    Creates nothing: a data directory the server has not initialised is an error."""
    try:
        secret = read_secret(settings.data_dir)
    except FileNotFoundError:
        raise CliError(
            f"no secret at {secret_path(settings.data_dir)}: has the server been started with "
            f"KAKOCLAW_STORAGE_PATH={settings.storage_path}?"
        ) from None
    except PermissionError:
        raise CliError(f"cannot read {secret_path(settings.data_dir)}: run as the user that runs the server") from None
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if not db_path(settings.data_dir).exists():
        raise CliError(f"no database at {db_path(settings.data_dir)}: has the server been started there?")
    with _open_store(settings) as store:
        admin = next((u for u in store.list_users() if u.is_admin), None)
        if admin is None:
            raise CliError(f"no admin user in {db_path(settings.data_dir)}")
        return Authenticator(store, secret, CLI_TOKEN_TTL_S).mint_token(admin)[0]


def _request(settings: Settings, token: str, method: str, path: str, *, timeout: float = 30.0, **kwargs: Any) -> Any:
    """Call the running server with `token`; the decoded JSON answer, or CliError."""
    url = _base_url(settings)
    try:
        with httpx.Client(base_url=url, timeout=timeout, trust_env=False) as client:
            response = client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    except httpx.ConnectError:
        raise CliError(f"KakoClaw is not running at {url} (nothing accepts connections there)") from None
    except httpx.TimeoutException:
        raise CliError(f"KakoClaw at {url} did not answer within {timeout:.0f}s") from None
    except httpx.HTTPError as exc:
        raise CliError(f"request to {url}{path} failed: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        message = body.get("error") if isinstance(body, dict) else None
        raise CliError(f"{method} {path}: {response.status_code} {message or response.reason_phrase}")
    if body is None:
        raise CliError(f"{method} {path}: the answer is not JSON (is {url} a KakoClaw server?)")
    return body


# -- ps -----------------------------------------------------------------------------------


def cmd_ps(settings: Settings, args: argparse.Namespace) -> int:
    active = _request(settings, _admin_token(settings), "GET", "/api/v1/chat/active")
    if args.json:
        print(json.dumps(active, indent=2))
    else:
        print(format_process_table(active), end="")
    return 0


def format_process_table(active: list[dict[str, Any]], now: datetime | None = None) -> str:
    """The `ps` table: one line per execution, then its processes indented below it."""
    if not active:
        return "No executions are running.\n"
    now = now or datetime.now(UTC)
    rows = [["EXECUTION", "SESSION", "USER", "STATE", "PID", "UPTIME", "CPU%", "RSS"]]
    procs_of: list[list[list[str]]] = []
    for ex in active:
        rows.append(
            [
                _text(ex.get("id")),
                _text(ex.get("session_id")),
                _user(ex.get("user")),
                _text(ex.get("state")),
                _text(ex.get("pid")),
                _uptime(ex, now),
                _percent(ex.get("cpu_percent")),
                _size(ex.get("rss_bytes")),
            ]
        )
        procs = [["PID", "PPID", "STATUS", "CPU%", "RSS", "COMMAND"]]
        for p in ex.get("processes") or []:
            procs.append(
                [
                    _text(p.get("pid")),
                    _text(p.get("ppid")),
                    _text(p.get("status")),
                    _percent(p.get("cpu_percent")),
                    _size(p.get("rss_bytes")),
                    _text(p.get("cmdline") or p.get("name")),
                ]
            )
        procs_of.append(procs if len(procs) > 1 else [])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = [_row(rows[0], widths)]
    for row, procs in zip(rows[1:], procs_of):
        out.append(_row(row, widths))
        if procs:
            pwidths = [max(len(r[i]) for r in procs) for i in range(len(procs[0]))]
            out.extend("    " + _row(r, pwidths) for r in procs)
    return "\n".join(out) + "\n"


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _user(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("username") or value.get("id")
    return _text(value)


def _percent(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def _size(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return "-"  # unreachable


def _uptime(ex: dict[str, Any], now: datetime) -> str:
    try:
        seconds = (now - parse_time(str(ex["started_at"]))).total_seconds()
    except (KeyError, ValueError, TypeError):
        return _text(ex.get("duration"))
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


# -- cancel -------------------------------------------------------------------------------


def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    token = _admin_token(settings)
    with _open_store(settings) as store:
        is_execution = store.get_execution(args.target) is not None
    body: dict[str, Any] = {"execution_id" if is_execution else "session_id": args.target}
    if args.force:
        body["force"] = True
    if args.grace is not None:
        if args.grace < 0:
            raise CliError("--grace must not be negative")
        body["grace_s"] = args.grace
    grace = 0.0 if args.force else (args.grace if args.grace is not None else settings.cancel_grace)
    result = _request(settings, token, "POST", "/api/v1/chat/cancel", json=body, timeout=grace + 60)
    print(format_cancel_result(result, args.target))
    return 0 if result.get("canceled") else 1


def format_cancel_result(result: dict[str, Any], target: str) -> str:
    if not result.get("canceled"):
        return f"Nothing was running for {target!r}."
    lines = [str(result.get("message") or f"Canceled {result['canceled']} execution(s)")]
    for ex in result.get("executions") or []:
        latency = ex.get("latency_ms")
        took = f" in {latency:.0f} ms" if isinstance(latency, (int, float)) else ""
        signal = f" by {ex['signal']}" if ex.get("signal") else ""
        lines.append(f"  {_text(ex.get('id'))}: {_text(ex.get('state'))}{signal}{took}")
    return "\n".join(lines)
