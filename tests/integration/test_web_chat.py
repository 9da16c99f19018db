"""/ws/chat and the chat HTTP routes against a real server, with a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import websockets

from tests.engine_helpers import survivors
from tests.server_helpers import ws_events_until

ENVELOPE = {"seq", "session_id", "execution_id", "ts"}


def covered(events: list[dict]) -> list[int]:
    """Every seq the events cover (a coalesced stream frame covers seq_first..seq)."""
    out: list[int] = []
    for e in events:
        if "seq" in e and e["type"] not in ("resync", "subscribed"):
            out.extend(range(e.get("seq_first", e["seq"]), e["seq"] + 1))
    return out


def sid() -> str:
    return f"web:chat:{uuid.uuid4().hex[:8]}"


def connect(server, token):
    return websockets.connect(f"{server.ws_url}?token={token}", max_size=8 * 1024 * 1024)


def test_streaming_reply_has_the_original_events_with_envelopes(server, admin_token):
    session = sid()

    async def body():
        async with connect(server, admin_token) as ws:
            await ws.send(json.dumps({"type": "message", "session_id": session, "content": "hello there"}))
            return await ws_events_until(ws, lambda e: e["type"] == "ready")

    events = asyncio.run(body())
    types = [e["type"] for e in events]
    assert types[0] == "message" and types[1] == "stream_start"
    assert len(covered([e for e in events if e["type"] == "stream"])) >= 3  # several deltas
    assert types[-2:] == ["stream_end", "ready"]
    assert all(ENVELOPE <= e.keys() for e in events)
    assert covered(events) == list(range(events[0]["seq"], events[-1]["seq"] + 1))
    text = "".join(e["content"] for e in events if e["type"] == "stream")
    end = events[-2]
    assert end["content"] == text and "hello there" in text and "error" not in end
    with server.client(admin_token) as c:
        messages = c.get(f"/api/v1/chat/sessions/{session}").json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"] == text and messages[1]["state"] == "completed"


def test_shell_streams_tool_call_and_tool_output(server, admin_token):
    session = sid()

    async def body():
        async with connect(server, admin_token) as ws:
            await ws.send(json.dumps({"type": "message", "session_id": session,
                                      "content": "/shell echo one; sleep 0.3; echo two"}))
            return await ws_events_until(ws, lambda e: e["type"] == "ready")

    events = asyncio.run(body())
    calls = [e for e in events if e["type"] == "tool_call"]
    assert [c["status"] for c in calls] == ["started", "finished"]
    assert calls[0]["name"] == "exec" and calls[0]["args"] == {"command": "echo one; sleep 0.3; echo two"}
    outputs = [e for e in events if e["type"] == "tool_output"]
    assert [o["data"] for o in outputs][:2] == ["one\n", "two\n"]
    assert all(o["call_id"] == calls[0]["call_id"] for o in outputs)
    assert "one\ntwo" in calls[1]["result"]
    with server.client(admin_token) as c:
        messages = c.get(f"/api/v1/chat/sessions/{session}").json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "exec"


def test_cancel_of_a_sigterm_ignoring_setsid_tool_over_http(server, admin_token):
    session = sid()
    token = f"{4000 + uuid.uuid4().int % 10**6 / 1000:.3f}"
    cmd = f"/shell setsid sh -c 'trap \"\" TERM; sleep {token}' & trap '' TERM; sleep {token}"

    async def body():
        async with connect(server, admin_token) as ws:
            await ws.send(json.dumps({"type": "message", "session_id": session, "content": cmd}))
            await ws_events_until(ws, lambda e: e["type"] == "tool_call")
            for _ in range(100):
                if len(survivors(f"sleep {token}")) >= 2:
                    break
                await asyncio.sleep(0.1)
            async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {admin_token}"}) as c:
                for _ in range(50):  # the process table is sampled about twice a second
                    active = (await c.get("/api/v1/chat/active")).json()
                    if f"sleep {token}" in json.dumps(active):
                        break
                    await asyncio.sleep(0.2)
                r = await c.post("/api/v1/chat/cancel", json={"session_id": session, "grace_s": 1}, timeout=30)
            events = await ws_events_until(ws, lambda e: e["type"] == "ready")
            return active, r.json(), events

    active, answer, events = asyncio.run(body())
    row = [a for a in active if a["session_id"] == session][0]
    assert list(row)[:4] == ["id", "session_id", "started_at", "duration"]
    assert row["state"] == "running" and row["pid"] and row["user"] == "admin"
    cmdlines = " ".join(p["cmdline"] for p in row["processes"])
    assert "agent_runner" in cmdlines and f"sleep {token}" in cmdlines
    assert answer["canceled"] == 1 and answer["message"] == "Canceled 1 execution(s)"
    assert answer["executions"][0]["state"] == "killed" and answer["executions"][0]["signal"] == "SIGKILL"
    assert survivors(f"sleep {token}") == []  # the cancel answered when the tree was empty
    end = [e for e in events if e["type"] == "stream_end"][0]
    assert end["canceled"] is True and end["error"] == "Execution canceled by user"
    assert events[-1]["type"] == "ready"


def test_ws_cancel_keeps_the_partial_reply(server, admin_token):
    session = sid()

    async def body():
        async with connect(server, admin_token) as ws:
            await ws.send(json.dumps({"type": "message", "session_id": session, "content": "/sleep 30"}))
            await ws_events_until(ws, lambda e: e["type"] == "stream")
            await ws.send(json.dumps({"type": "cancel", "session_id": session}))
            return await ws_events_until(ws, lambda e: e["type"] == "ready")

    events = asyncio.run(body())
    end = [e for e in events if e["type"] == "stream_end"][0]
    assert end["canceled"] and end["state"] == "canceled" and end["content"].startswith("tick 1")
    with server.client(admin_token) as c:
        last = c.get(f"/api/v1/chat/sessions/{session}").json()["messages"][-1]
    assert last["role"] == "assistant" and last["state"] == "canceled" and last["content"].startswith("tick 1")


def test_session_busy_and_background_execution(server, admin_token):
    session = sid()

    async def body():
        async with connect(server, admin_token) as ws:
            await ws.send(json.dumps({"type": "message", "session_id": session, "content": "/sleep 2"}))
            await ws_events_until(ws, lambda e: e["type"] == "stream")
            await ws.send(json.dumps({"type": "message", "session_id": session, "content": "again"}))
            busy = await ws_events_until(ws, lambda e: e["type"] == "error")
        # every socket is closed now; the execution goes on
        await asyncio.sleep(3)
        return busy[-1]

    busy = asyncio.run(body())
    assert busy["code"] == "session_busy"
    with server.client(admin_token) as c:
        for _ in range(50):
            messages = c.get(f"/api/v1/chat/sessions/{session}").json()["messages"]
            if messages[-1]["role"] == "assistant":
                break
            asyncio.run(asyncio.sleep(0.2))
    assert messages[-1]["state"] == "completed" and messages[-1]["content"].endswith("Slept 2 s.")


def test_resume_with_after_seq_has_no_gap_and_no_duplicate(server, admin_token):
    session = sid()

    async def body():
        seen: list[dict] = []
        async with connect(server, admin_token) as ws:
            await ws.send(json.dumps({"type": "message", "session_id": session, "content": "/sleep 4"}))
            seen += await ws_events_until(ws, lambda e: e["type"] == "stream")
        await asyncio.sleep(1.5)  # disconnected while it streams
        async with connect(server, admin_token) as ws:
            await ws.send(json.dumps({"type": "subscribe", "session_id": session, "after_seq": seen[-1]["seq"]}))
            seen += [e for e in await ws_events_until(ws, lambda e: e["type"] == "ready") if "seq" in e]
        return seen

    seen = asyncio.run(body())
    seqs = covered([e for e in seen if e["type"] != "subscribed"])
    assert seqs == list(range(seqs[0], seqs[-1] + 1))  # no gap, no duplicate
    text = "".join(e["content"] for e in seen if e["type"] == "stream")
    assert text == [e for e in seen if e["type"] == "stream_end"][0]["content"]


def test_two_subscribers_get_identical_sequences_and_a_stalled_one_delays_nobody(server, admin_token):
    session = sid()

    async def body():
        async with connect(server, admin_token) as a, connect(server, admin_token) as b, \
                connect(server, admin_token) as stalled:
            for ws in (b, stalled):
                await ws.send(json.dumps({"type": "subscribe", "session_id": session}))
                await ws_events_until(ws, lambda e: e["type"] == "subscribed")
            # `stalled` never reads again
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await a.send(json.dumps({"type": "message", "session_id": session, "content": "/flood 20000"}))
            ev_a, ev_b = await asyncio.gather(
                ws_events_until(a, lambda e: e["type"] == "ready", timeout=120),
                ws_events_until(b, lambda e: e["type"] == "ready", timeout=120),
            )
            return ev_a, ev_b, loop.time() - t0

    ev_a, ev_b, elapsed = asyncio.run(body())
    assert [e["type"] for e in ev_a + ev_b if e["type"] in ("resync", "error")] == []
    # identical content in identical order, whatever the batching of deltas into frames
    assert covered(ev_a) == covered(ev_b)
    stream = lambda evs: "".join(e["content"] for e in evs if e["type"] == "stream")
    assert stream(ev_a) == stream(ev_b) == "".join(f"x{i} " for i in range(20000))
    assert elapsed < 60  # the stalled reader did not hold the others back


def test_malformed_frames_get_clear_errors_and_the_socket_stays_usable(server, admin_token):
    async def body():
        async with connect(server, admin_token) as ws:
            answers = []
            for frame in [
                '{"type": "message", "content": ',  # invalid JSON
                json.dumps({"type": "dance"}),  # unknown type
                json.dumps({"type": "message", "session_id": 5, "content": "x"}),  # wrong field type
                json.dumps({"type": "message", "content": 7}),
                json.dumps({"type": "subscribe", "after_seq": "x"}),
                json.dumps([1, 2]),
                json.dumps({"type": "message", "content": "x" * 600_000}),  # oversized
            ]:
                await ws.send(frame)
                answers.append((await ws_events_until(ws, lambda e: e["type"] == "error"))[-1])
            await ws.send(json.dumps({"type": "ping"}))
            pong = await ws_events_until(ws, lambda e: e["type"] == "pong")
            return answers, pong

    answers, pong = asyncio.run(body())
    assert [a["code"] for a in answers] == [
        "invalid_json", "unknown_type", "bad_request", "bad_request", "bad_request", "bad_request", "too_large",
    ]
    assert "session_id must be a string" in answers[2]["message"]
    assert pong[-1]["type"] == "pong"


def test_plain_text_frame_is_a_message_for_the_default_session(server, admin_token):
    async def body():
        async with connect(server, admin_token) as ws:
            await ws.send("just words")
            return await ws_events_until(ws, lambda e: e["type"] == "ready")

    events = asyncio.run(body())
    assert all(e["session_id"] == "web:chat" for e in events if "seq" in e)
    assert "just words" in events[-2]["content"]


def test_bad_token_on_the_socket_is_refused(server):
    async def body():
        async with websockets.connect(f"{server.ws_url}?token=nope") as ws:
            first = json.loads(await ws.recv())
            try:
                await ws.recv()
            except websockets.ConnectionClosed as exc:
                return first, exc.rcvd.code

    first, code = asyncio.run(body())
    assert first == {"type": "error", "code": "unauthorized", "message": "unauthorized"}
    assert code == 4401
