"""The SQLite store on real database files."""

from __future__ import annotations

import sqlite3
import stat
import threading

import pytest

from supervisor.store import (
    MISSING_TOOL_RESULT,
    LastAdmin,
    Store,
    StoreError,
    UsernameTaken,
    parse_time,
    utc_now,
)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def alice(store):
    return store.create_user("alice", "hash-a", "user")


def call(call_id: str, name: str = "exec", arguments: str = '{"command": "ls"}') -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_open_creates_private_dir_and_file_in_wal_mode(tmp_path):
    data = tmp_path / "a" / "data"
    with Store.open(data) as s:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "kakoclaw.db").stat().st_mode) == 0o600
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert s._db.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        assert s.schema_version() == 1


def test_reopen_keeps_data_and_schema_version(tmp_path):
    with Store.open(tmp_path) as s:
        user = s.create_user("bob", "h", "admin")
        s.claim_session("web:chat", user.id)
        s.add_message("web:chat", "user", "hi")
        s.create_execution(id="e1", session_id="web:chat", user_id=user.id)
    with Store.open(tmp_path) as s:
        assert s.schema_version() == 1
        assert s.get_user_by_name("bob") == user
        assert [m["content"] for m in s.list_messages("web:chat")] == ["hi"]
        assert s.get_execution("e1").state == "queued"


def test_refuses_a_newer_schema(tmp_path):
    Store.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "kakoclaw.db")
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(tmp_path)


def test_timestamps_are_utc_iso_with_z():
    now = utc_now()
    assert now.endswith("Z") and "T" in now
    assert parse_time(now).utcoffset().total_seconds() == 0


# -- users ------------------------------------------------------------------------------


def test_users_crud(store, alice):
    assert alice.id > 0 and alice.role == "user" and alice.token_version == 1
    assert alice.created_at.endswith("Z")
    assert store.get_user(alice.id) == alice
    assert store.get_user_by_name("alice") == alice
    assert store.get_user(9999) is None and store.get_user(2**70) is None
    admin = store.create_user("root", "hash-r", "admin")
    assert [u.username for u in store.list_users()] == ["alice", "root"]
    assert store.count_admins() == 1 and store.count_users() == 2
    with pytest.raises(UsernameTaken):
        store.create_user("alice", "x")
    with pytest.raises(StoreError):
        store.create_user("carol", "x", "superuser")
    assert store.delete_user(alice.id) is True
    assert store.delete_user(alice.id) is False
    assert store.get_user(alice.id) is None
    assert store.list_users() == [admin]


def test_password_change_bumps_token_version_role_change_does_not(store, alice):
    after_role = store.update_user(alice.id, role="admin")
    assert after_role.role == "admin" and after_role.token_version == 1
    after_pw = store.update_user(alice.id, password_hash="new")
    assert after_pw.password_hash == "new" and after_pw.token_version == 2
    assert store.update_user(424242, role="user") is None
    with pytest.raises(StoreError):
        store.update_user(alice.id, role="owner")


def test_last_admin_cannot_be_deleted_or_demoted(store):
    first = store.create_user("first", "h", "admin")
    with pytest.raises(LastAdmin):
        store.delete_user(first.id)
    with pytest.raises(LastAdmin):
        store.update_user(first.id, role="user")
    second = store.create_user("second", "h", "admin")
    assert store.update_user(first.id, role="user").role == "user"
    with pytest.raises(LastAdmin):
        store.delete_user(second.id)
    assert store.get_user(second.id).role == "admin"


def test_deleting_a_user_deletes_their_sessions_and_messages(store, alice):
    store.claim_session("s1", alice.id)
    store.add_message("s1", "user", "hello")
    store.delete_user(alice.id)
    assert store.get_session("s1") is None
    assert store.list_messages("s1") == []


# -- sessions and messages --------------------------------------------------------------


def test_claim_session_creates_once_and_keeps_the_owner(store, alice):
    bob = store.create_user("bob", "h")
    first = store.claim_session("web:chat:x", alice.id)
    assert first.user_id == alice.id and first.title == "" and first.archived is False
    again = store.claim_session("web:chat:x", bob.id)
    assert again.user_id == alice.id  # the caller compares the owner
    assert again.created_at == first.created_at


def test_add_message_sets_title_and_touches_session(store, alice):
    session = store.claim_session("s", alice.id)
    long_text = "  Please   summarise\nthe five articles about " + "x" * 100
    store.add_message("s", "user", long_text)
    after = store.get_session("s")
    assert after.title == ("Please summarise the five articles about " + "x" * 100)[:60]
    assert after.updated_at > session.updated_at
    store.add_message("s", "user", "second question")
    assert store.get_session("s").title == after.title
    with pytest.raises(StoreError):
        store.add_message("no-such-session", "user", "x")
    with pytest.raises(StoreError):
        store.add_message("s", "system", "x")


def test_list_messages_round_trips_every_field(store, alice):
    store.claim_session("s", alice.id)
    ids = [
        store.add_message("s", "user", "/shell ls"),
        store.add_message("s", "assistant", "", tool_calls=[call("c1")], execution_id="e1"),
        store.add_message("s", "tool", "a\nb\n", tool_call_id="c1", name="exec", execution_id="e1"),
        store.add_message("s", "assistant", "Done.", state="completed", execution_id="e1"),
    ]
    assert ids == sorted(ids)
    messages = store.list_messages("s")
    assert [m["id"] for m in messages] == ids
    assert set(messages[0]) == {
        "id", "session_id", "role", "content", "created_at", "state",
        "tool_calls", "tool_call_id", "name", "execution_id",
    }  # fmt: skip
    assert messages[0]["tool_calls"] is None and messages[0]["session_id"] == "s"
    assert messages[1]["tool_calls"] == [call("c1")]
    assert messages[2]["tool_call_id"] == "c1" and messages[2]["name"] == "exec"
    assert messages[3]["state"] == "completed" and messages[3]["execution_id"] == "e1"
    assert all(m["created_at"].endswith("Z") for m in messages)


def test_history_for_model_is_a_valid_openai_conversation(store, alice):
    store.claim_session("s", alice.id)
    store.add_message("s", "user", "/shell ls")
    store.add_message("s", "assistant", "", tool_calls=[call("c1")])
    store.add_message("s", "tool", "file.txt", tool_call_id="c1", name="exec")
    store.add_message("s", "assistant", "There is one file.", state="completed")
    store.add_message("s", "user", "again")
    store.add_message("s", "assistant", "", state="failed")  # empty: left out
    store.add_message("s", "user", "two tools")
    store.add_message("s", "assistant", "Let me look.", tool_calls=[call("c2"), call("c3", "read_file")])
    store.add_message("s", "tool", "ok", tool_call_id="c2")
    store.add_message("s", "tool", "stray", tool_call_id="c99")  # answers no call: dropped
    store.add_message("s", "assistant", "partial answ", state="canceled")
    assert store.history_for_model("s") == [
        {"role": "user", "content": "/shell ls"},
        {"role": "assistant", "content": None, "tool_calls": [call("c1")]},
        {"role": "tool", "tool_call_id": "c1", "content": "file.txt"},
        {"role": "assistant", "content": "There is one file."},
        {"role": "user", "content": "again"},
        {"role": "user", "content": "two tools"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [call("c2"), call("c3", "read_file")]},
        {"role": "tool", "tool_call_id": "c2", "content": "ok"},
        {"role": "tool", "tool_call_id": "c3", "content": MISSING_TOOL_RESULT},
        {"role": "assistant", "content": "partial answ"},
    ]


def test_list_sessions_filters_orders_and_summarises(store, alice):
    bob = store.create_user("bob", "h")
    store.claim_session("a1", alice.id)
    store.add_message("a1", "user", "first of alice")
    store.add_message("a1", "assistant", "reply one")
    store.add_message("a1", "tool", "tool output is not a preview", tool_call_id="t")
    store.claim_session("a2", alice.id)
    store.add_message("a2", "user", "x" * 500)
    store.claim_session("b1", bob.id)
    store.claim_session("a3", alice.id)  # no messages yet
    store.update_session("a2", archived=True)

    mine = store.list_sessions(alice.id)
    assert [s["session_id"] for s in mine] == ["a2", "a3", "a1"]  # most recently updated first
    a1 = mine[2]
    assert a1["title"] == "first of alice"
    assert a1["last_message"] == "reply one"
    assert a1["message_count"] == 3
    assert a1["archived"] is False and a1["user_id"] == alice.id and a1["username"] == "alice"
    assert a1["updated_at"].endswith("Z") and a1["created_at"].endswith("Z")
    assert mine[1]["last_message"] == "" and mine[1]["message_count"] == 0
    assert len(mine[0]["last_message"]) == 200

    assert [s["session_id"] for s in store.list_sessions(alice.id, archived=False)] == ["a3", "a1"]
    assert [s["session_id"] for s in store.list_sessions(alice.id, archived=True)] == ["a2"]
    assert {s["session_id"] for s in store.list_sessions()} == {"a1", "a2", "a3", "b1"}
    assert [s["session_id"] for s in store.list_sessions(alice.id, limit=1, offset=1)] == ["a3"]
    assert store.list_sessions(alice.id, offset=2**80) == []


def test_update_and_delete_session(store, alice):
    store.claim_session("s", alice.id)
    store.add_message("s", "user", "hello")
    store.create_execution(id="e1", session_id="s", user_id=alice.id)
    renamed = store.update_session("s", title="Renamed", archived=True)
    assert renamed.title == "Renamed" and renamed.archived is True
    assert store.update_session("s", archived=False).archived is False
    assert store.update_session("missing", title="x") is None
    assert store.delete_session("s") is True
    assert store.get_session("s") is None and store.list_messages("s") == []
    assert store.delete_session("s") is False
    assert store.get_execution("e1") is not None  # execution history stays


# -- executions -------------------------------------------------------------------------


def test_execution_records(store, alice):
    e = store.create_execution(id="e1", session_id="s", user_id=alice.id, containment="pgroup")
    assert e.state == "queued" and e.created_at.endswith("Z") and e.pid is None and not e.finished
    started = store.update_execution("e1", state="running", pid=4242, started_at=utc_now())
    assert started.state == "running" and started.pid == 4242
    ended = store.update_execution(
        "e1", state="killed", ended_at=utc_now(), signal="SIGKILL", cancel_latency_ms=3012.5,
        exit_code=None, error="Execution canceled by user", stderr_tail="bye\n",
    )  # fmt: skip
    assert ended.finished and ended.signal == "SIGKILL" and ended.cancel_latency_ms == 3012.5
    assert ended.to_dict()["stderr_tail"] == "bye\n" and ended.to_dict()["containment"] == "pgroup"
    assert store.update_execution("nope", state="failed") is None
    with pytest.raises(StoreError):
        store.update_execution("e1", colour="red")
    with pytest.raises(StoreError):
        store.update_execution("e1", id="e2")
    with pytest.raises(StoreError):
        store.create_execution(session_id="s", user_id=alice.id)
    with pytest.raises(sqlite3.IntegrityError):
        store.create_execution(id="e1", session_id="s", user_id=alice.id)


def test_list_executions_filters_and_pages(store, alice):
    bob = store.create_user("bob", "h")
    for i in range(5):
        store.create_execution(id=f"a{i}", session_id="s1" if i < 3 else "s2", user_id=alice.id,
                               state="completed" if i % 2 else "failed")  # fmt: skip
    store.create_execution(id="b0", session_id="s3", user_id=bob.id)
    rows, total = store.list_executions()
    assert total == 6 and [r.id for r in rows] == ["b0", "a4", "a3", "a2", "a1", "a0"]
    rows, total = store.list_executions(alice.id, limit=2, offset=1)
    assert total == 5 and [r.id for r in rows] == ["a3", "a2"]
    rows, total = store.list_executions(alice.id, session_id="s1")
    assert total == 3 and {r.id for r in rows} == {"a0", "a1", "a2"}
    rows, total = store.list_executions(None, state="completed")
    assert {r.id for r in rows} == {"a1", "a3"} and total == 2
    assert store.list_executions(bob.id, session_id="s1") == ([], 0)


def test_interrupt_unfinished_marks_only_live_executions(store, alice):
    for state in ("queued", "starting", "running", "canceling", "completed", "killed"):
        store.create_execution(id=state, session_id="s", user_id=alice.id, state=state)
    store.update_execution("running", error="already had an error")
    ids = store.interrupt_unfinished(error="supervisor restarted")
    assert sorted(ids) == ["canceling", "queued", "running", "starting"]
    for i in ids:
        rec = store.get_execution(i)
        assert rec.state == "interrupted" and rec.ended_at.endswith("Z")
    assert store.get_execution("queued").error == "supervisor restarted"
    assert store.get_execution("running").error == "already had an error"
    assert store.get_execution("completed").ended_at is None  # untouched
    assert store.interrupt_unfinished() == []


def test_two_connections_on_one_file_see_each_other(tmp_path):
    # The CLI writes users with its own connection while the server holds one open.
    with Store.open(tmp_path) as server, Store.open(tmp_path) as cli:
        cli.create_user("from-cli", "h", "admin")
        assert server.get_user_by_name("from-cli") is not None


def test_store_calls_from_several_threads(store, alice):
    store.claim_session("s", alice.id)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                store.add_message("s", "user", f"{n}-{i}")
                store.list_sessions(alice.id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list_messages("s")) == 200
