"""Durable state in SQLite: users, chat sessions, messages and execution records.

One `Store` wraps one connection in WAL mode with foreign keys on. Every call is a short
synchronous statement (or a short transaction); the web process makes them from its event
loop thread, and a lock makes the odd call from a worker thread (password hashing runs in
one) safe. Timestamps are ISO 8601 UTC strings ending in 'Z' with microseconds, so they
sort as text.

The schema is created on open and migrated forward by the numbered scripts in
`MIGRATIONS`; `schema_version` holds the number of the last one applied.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DB_FILENAME = "kakoclaw.db"
ROLES = ("admin", "user")
MESSAGE_ROLES = ("user", "assistant", "tool")
TERMINAL_STATES = frozenset({"completed", "failed", "canceled", "killed", "timed_out", "interrupted"})
TITLE_CHARS = 60
PREVIEW_CHARS = 200
# What history_for_model gives the model for a tool call whose result was never stored
# (its execution was canceled or interrupted while the tool ran).
MISSING_TOOL_RESULT = "error: no result (the execution ended before this tool call finished)"

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE users (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        username       TEXT NOT NULL UNIQUE,
        password_hash  TEXT NOT NULL,
        role           TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        token_version  INTEGER NOT NULL DEFAULT 1,
        created_at     TEXT NOT NULL
    );
    CREATE TABLE sessions (
        session_id  TEXT PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        title       TEXT NOT NULL DEFAULT '',
        archived    INTEGER NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE INDEX sessions_by_user ON sessions(user_id, updated_at);
    CREATE INDEX sessions_by_update ON sessions(updated_at);
    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id    TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
        role          TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
        content       TEXT NOT NULL DEFAULT '',
        tool_calls    TEXT,
        tool_call_id  TEXT,
        name          TEXT,
        state         TEXT,
        execution_id  TEXT,
        created_at    TEXT NOT NULL
    );
    CREATE INDEX messages_by_session ON messages(session_id, id);
    CREATE TABLE executions (
        id                 TEXT PRIMARY KEY,
        session_id         TEXT NOT NULL,
        user_id            INTEGER NOT NULL,
        state              TEXT NOT NULL,
        pid                INTEGER,
        created_at         TEXT NOT NULL,
        started_at         TEXT,
        ended_at           TEXT,
        exit_code          INTEGER,
        signal,
        cancel_latency_ms  REAL,
        error              TEXT,
        stderr_tail        TEXT,
        containment        TEXT
    );
    CREATE INDEX executions_by_user ON executions(user_id, created_at);
    CREATE INDEX executions_by_session ON executions(session_id, created_at);
    CREATE INDEX executions_by_state ON executions(state);
    """,
]


class StoreError(Exception):
    """A request the store refuses (bad value, duplicate name, missing row)."""


class UsernameTaken(StoreError):
    """create_user: the name is in use."""


class LastAdmin(StoreError):
    """update_user/delete_user: the change would leave no admin."""


_clock_lock = threading.Lock()
_last_now = datetime.min.replace(tzinfo=UTC)


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string: '2026-02-20T04:08:01.123456Z'.

    Strictly increasing within the process (at least 1 µs apart), so that rows written
    one after another sort in that order by time.
    """
    global _last_now
    with _clock_lock:
        now = datetime.now(UTC)
        if now <= _last_now:
            now = _last_now + timedelta(microseconds=1)
        _last_now = now
    return format_time(now)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Inverse of `format_time` (accepts any ISO 8601 string Python can read)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ensure_private_dir(path: str | Path) -> Path:
    """Create `path` (and parents) if needed; a directory this creates gets mode 0700."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


def db_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / DB_FILENAME


@dataclass(frozen=True)
class User:
    id: int
    username: str
    password_hash: str
    role: str
    token_version: int
    created_at: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def public(self) -> dict[str, Any]:
        """What the API shows of a user (never the hash)."""
        return {"id": self.id, "username": self.username, "role": self.role, "created_at": self.created_at}


@dataclass(frozen=True)
class Session:
    session_id: str
    user_id: int
    title: str
    archived: bool
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Execution:
    """The durable record of one agent execution (one runner process tree)."""

    id: str
    session_id: str
    user_id: int
    state: str
    pid: int | None = None
    created_at: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    signal: str | int | None = None
    cancel_latency_ms: float | None = None
    error: str | None = None
    stderr_tail: str | None = None
    containment: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EXECUTION_FIELDS = tuple(f.name for f in fields(Execution))


class Store:
    """The SQLite database of one KakoClaw data directory.

    `Store(path)` opens (creating and migrating if needed) the database file at `path`;
    `Store.open(data_dir)` opens `<data_dir>/kakoclaw.db`, creating the directory with mode
    0700. Use `:memory:` for a throwaway database. Close with `close()` or a `with` block.
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        fresh = self.path != ":memory:" and not os.path.exists(self.path)
        if fresh:
            # Create the file private before SQLite writes anything into it; the WAL and
            # shared-memory files SQLite creates next to it copy its mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    @classmethod
    def open(cls, data_dir: str | Path) -> Store:
        return cls(db_path(ensure_private_dir(data_dir)))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on error)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"database {self.path} has schema version {current}, newer than this program's "
                    f"{len(MIGRATIONS)}; upgrade KakoClaw"
                )
            for script in MIGRATIONS[current:]:
                for statement in _split_sql(script):
                    db.execute(statement)
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS),))
            else:
                db.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))

    def schema_version(self) -> int:
        row = self._one("SELECT version FROM schema_version")
        return row[0] if row else 0

    # -- users ------------------------------------------------------------------------

    def create_user(self, username: str, password_hash: str, role: str = "user") -> User:
        """Add a user; raises UsernameTaken if the name exists, StoreError on a bad role."""
        _check_role(role)
        if not username:
            raise StoreError("username must not be empty")
        try:
            with self._tx() as db:
                cur = db.execute(
                    "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
                    (username, password_hash, role, utc_now()),
                )
        except sqlite3.IntegrityError:
            raise UsernameTaken(f"user {username!r} already exists") from None
        user = self.get_user(cur.lastrowid)  # type: ignore[arg-type]
        assert user is not None
        return user

    def get_user(self, user_id: int) -> User | None:
        if not _fits_integer(user_id):
            return None
        row = self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        return User(**dict(row)) if row else None

    def get_user_by_name(self, username: str) -> User | None:
        row = self._one("SELECT * FROM users WHERE username = ?", (username,))
        return User(**dict(row)) if row else None

    def list_users(self) -> list[User]:
        return [User(**dict(r)) for r in self._all("SELECT * FROM users ORDER BY id")]

    def count_users(self) -> int:
        return self._one("SELECT count(*) FROM users")[0]  # type: ignore[index]

    def count_admins(self) -> int:
        return self._one("SELECT count(*) FROM users WHERE role = 'admin'")[0]  # type: ignore[index]

    def update_user(self, user_id: int, *, password_hash: str | None = None, role: str | None = None) -> User | None:
        """Change a user's password hash and/or role; None if there is no such user.

        A new password bumps `token_version`, which invalidates every token issued before.
        Raises LastAdmin rather than demote the only admin.
        """
        sets, args = [], []
        if password_hash is not None:
            sets += ["password_hash = ?", "token_version = token_version + 1"]
            args.append(password_hash)
        if role is not None:
            _check_role(role)
            sets.append("role = ?")
            args.append(role)
        if sets and _fits_integer(user_id):
            with self._tx() as db:
                if role == "user":
                    self._keep_an_admin(db, user_id, "demote")
                db.execute(f"UPDATE users SET {', '.join(sets)} WHERE id = ?", (*args, user_id))
        return self.get_user(user_id)

    def delete_user(self, user_id: int) -> bool:
        """Delete a user with their sessions and messages (execution records stay); False
        if there is no such user. Raises LastAdmin rather than delete the only admin."""
        if not _fits_integer(user_id):
            return False
        with self._tx() as db:
            self._keep_an_admin(db, user_id, "delete")
            return db.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount > 0

    @staticmethod
    def _keep_an_admin(db: sqlite3.Connection, user_id: int, verb: str) -> None:
        row = db.execute("SELECT role FROM users WHERE id = ?", (user_id,)).fetchone()
        if row and row["role"] == "admin":
            others = db.execute("SELECT count(*) FROM users WHERE role = 'admin' AND id != ?", (user_id,)).fetchone()
            if others[0] == 0:
                raise LastAdmin(f"cannot {verb} the last admin")

    # -- sessions ---------------------------------------------------------------------

    def claim_session(self, session_id: str, user_id: int) -> Session:
        """The session `session_id`, created owned by `user_id` if it did not exist.

        An existing session is returned as it is, whoever owns it: the caller compares
        `session.user_id` with the requester.
        """
        now = utc_now()
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO sessions (session_id, user_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (session_id, user_id, now, now),
            )
        session = self.get_session(session_id)
        assert session is not None
        return session

    def get_session(self, session_id: str) -> Session | None:
        row = self._one("SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        return _session(row) if row else None

    def list_sessions(
        self, user_id: int | None = None, *, archived: bool | None = None, limit: int = 50, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Sessions, most recently updated first: all users' when `user_id` is None.

        Each is a dict: session_id, title, archived (bool), last_message (a preview of the
        last user or assistant message with text), message_count, created_at, updated_at,
        user_id, username.
        """
        where, args = [], []
        if user_id is not None:
            where.append("s.user_id = ?")
            args.append(user_id)
        if archived is not None:
            where.append("s.archived = ?")
            args.append(int(archived))
        sql = f"""
            SELECT s.session_id, s.title, s.archived, s.created_at, s.updated_at, s.user_id,
                   u.username,
                   (SELECT count(*) FROM messages m WHERE m.session_id = s.session_id) AS message_count,
                   (SELECT substr(m.content, 1, {PREVIEW_CHARS}) FROM messages m
                     WHERE m.session_id = s.session_id AND m.role IN ('user', 'assistant')
                       AND m.content != ''
                     ORDER BY m.id DESC LIMIT 1) AS last_message
              FROM sessions s JOIN users u ON u.id = s.user_id
             {"WHERE " + " AND ".join(where) if where else ""}
             ORDER BY s.updated_at DESC, s.rowid DESC
             LIMIT ? OFFSET ?"""
        rows = self._all(sql, (*args, _limit(limit), _offset(offset)))
        out = []
        for row in rows:
            item = dict(row)
            item["archived"] = bool(item["archived"])
            item["last_message"] = item["last_message"] or ""
            out.append(item)
        return out

    def update_session(self, session_id: str, *, title: str | None = None, archived: bool | None = None) -> Session | None:
        """Rename and/or (un)archive a session; None if there is no such session."""
        sets, args = [], []
        if title is not None:
            sets.append("title = ?")
            args.append(title)
        if archived is not None:
            sets.append("archived = ?")
            args.append(int(archived))
        if sets:
            sets.append("updated_at = ?")
            args.append(utc_now())
            with self._tx() as db:
                db.execute(f"UPDATE sessions SET {', '.join(sets)} WHERE session_id = ?", (*args, session_id))
        return self.get_session(session_id)

    def delete_session(self, session_id: str) -> bool:
        """Delete a session and its messages (its execution records stay as history)."""
        with self._tx() as db:
            return db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,)).rowcount > 0

    # -- messages ---------------------------------------------------------------------

    def add_message(
        self,
        session_id: str,
        role: str,
        content: str,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        name: str | None = None,
        state: str | None = None,
        execution_id: str | None = None,
    ) -> int:
        """Append a message to an existing session and return its id.

        `tool_calls` (assistant) is a list in OpenAI chat format; `tool_call_id` and `name`
        belong to tool results; `state` records how an assistant reply ended (completed,
        canceled, failed, killed, timed_out, interrupted). The session's `updated_at` moves
        to now, and a session without a title takes the first user message's first 60
        characters as one.
        """
        if role not in MESSAGE_ROLES:
            raise StoreError(f"message role must be one of {', '.join(MESSAGE_ROLES)}, not {role!r}")
        now = utc_now()
        calls = json.dumps(tool_calls) if tool_calls else None
        with self._tx() as db:
            session = db.execute("SELECT title FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
            if session is None:
                raise StoreError(f"no session {session_id!r}")
            cur = db.execute(
                """INSERT INTO messages (session_id, role, content, tool_calls, tool_call_id, name, state,
                                         execution_id, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (session_id, role, content or "", calls, tool_call_id, name, state, execution_id, now),
            )
            if role == "user" and not session["title"] and (title := _title_from(content)):
                db.execute(
                    "UPDATE sessions SET updated_at = ?, title = ? WHERE session_id = ?", (now, title, session_id)
                )
            else:
                db.execute("UPDATE sessions SET updated_at = ? WHERE session_id = ?", (now, session_id))
        return cur.lastrowid  # type: ignore[return-value]

    def list_messages(self, session_id: str) -> list[dict[str, Any]]:
        """A session's messages, oldest first, as dicts: id, session_id, role, content,
        created_at, state, tool_calls (parsed, or None), tool_call_id, name, execution_id."""
        rows = self._all("SELECT * FROM messages WHERE session_id = ? ORDER BY id", (session_id,))
        out = []
        for row in rows:
            item = dict(row)
            item["tool_calls"] = json.loads(item["tool_calls"]) if item["tool_calls"] else None
            out.append(item)
        return out

    def history_for_model(self, session_id: str) -> list[dict[str, Any]]:
        """The session's messages in OpenAI chat format, for the runner's job spec.

        Assistant messages with neither text nor tool calls are left out. Tool results that
        answer no preceding tool call are dropped, and a tool call without a stored result
        (its execution ended mid-tool) gets `MISSING_TOOL_RESULT`, so the list is always a
        valid conversation.
        """
        history: list[dict[str, Any]] = []
        pending: list[str] = []  # ids of the last assistant turn's calls still unanswered

        def close_pending() -> None:
            for call_id in pending:
                history.append({"role": "tool", "tool_call_id": call_id, "content": MISSING_TOOL_RESULT})
            pending.clear()

        for msg in self.list_messages(session_id):
            role, content = msg["role"], msg["content"]
            if role == "tool":
                if msg["tool_call_id"] not in pending:
                    continue
                pending.remove(msg["tool_call_id"])
                history.append({"role": "tool", "tool_call_id": msg["tool_call_id"], "content": content})
                continue
            close_pending()
            if role == "user":
                history.append({"role": "user", "content": content})
            elif msg["tool_calls"]:
                history.append({"role": "assistant", "content": content or None, "tool_calls": msg["tool_calls"]})
                pending = [c.get("id") for c in msg["tool_calls"] if isinstance(c, dict) and c.get("id")]
            elif content:
                history.append({"role": "assistant", "content": content})
        close_pending()
        return history

    # -- executions -------------------------------------------------------------------

    def create_execution(self, **values: Any) -> Execution:
        """Record a new execution. Needs id, session_id, user_id; state defaults to
        'queued' and created_at to now; any other `Execution` field may be given."""
        values.setdefault("state", "queued")
        values.setdefault("created_at", utc_now())
        missing = {"id", "session_id", "user_id"} - values.keys()
        if missing:
            raise StoreError(f"create_execution needs {', '.join(sorted(missing))}")
        _check_execution_fields(values)
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._tx() as db:
            db.execute(f"INSERT INTO executions ({cols}) VALUES ({marks})", tuple(values.values()))
        execution = self.get_execution(values["id"])
        assert execution is not None
        return execution

    def update_execution(self, execution_id: str, **values: Any) -> Execution | None:
        """Set any `Execution` fields but id; returns the updated record (None if absent)."""
        _check_execution_fields(values)
        if "id" in values:
            raise StoreError("an execution's id cannot change")
        if values:
            sets = ", ".join(f"{col} = ?" for col in values)
            with self._tx() as db:
                db.execute(f"UPDATE executions SET {sets} WHERE id = ?", (*values.values(), execution_id))
        return self.get_execution(execution_id)

    def get_execution(self, execution_id: str) -> Execution | None:
        row = self._one("SELECT * FROM executions WHERE id = ?", (execution_id,))
        return Execution(**dict(row)) if row else None

    def list_executions(
        self,
        user_id: int | None = None,
        *,
        session_id: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Execution], int]:
        """Execution records, newest first, filtered by user (None: all), session and
        state; returns (one page of records, total number matching)."""
        where, args = [], []
        for col, val in (("user_id", user_id), ("session_id", session_id), ("state", state)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM executions {clause}", tuple(args)).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM executions {clause} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                (*args, _limit(limit), _offset(offset)),
            ).fetchall()
        return [Execution(**dict(r)) for r in rows], total

    def interrupt_unfinished(self, error: str | None = None) -> list[str]:
        """Mark every execution not in a terminal state `interrupted`, ended now (and with
        `error` if given and it had none); return their ids. Run at start-up for the
        executions a previous supervisor left behind, and at shutdown."""
        terminal = tuple(sorted(TERMINAL_STATES))
        marks = ", ".join("?" for _ in terminal)
        with self._tx() as db:
            ids = [r[0] for r in db.execute(f"SELECT id FROM executions WHERE state NOT IN ({marks})", terminal)]
            db.execute(
                f"""UPDATE executions SET state = 'interrupted', ended_at = ?, error = coalesce(error, ?)
                     WHERE state NOT IN ({marks})""",
                (utc_now(), error, *terminal),
            )
        return ids


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def _check_execution_fields(values: dict[str, Any]) -> None:
    unknown = set(values) - set(EXECUTION_FIELDS)
    if unknown:
        raise StoreError(f"unknown execution field(s): {', '.join(sorted(unknown))}")


def _fits_integer(value: int) -> bool:
    """Whether SQLite can hold `value` as an INTEGER (a larger id can match no row)."""
    return -(2**63) <= value < 2**63


def _limit(limit: int) -> int:
    return max(0, min(int(limit), 1000))


def _offset(offset: int) -> int:
    return max(0, min(int(offset), 2**62))


def _title_from(content: str) -> str:
    return re.sub(r"\s+", " ", content or "").strip()[:TITLE_CHARS]


def _session(row: sqlite3.Row) -> Session:
    item = dict(row)
    item["archived"] = bool(item["archived"])
    return Session(**item)
