"""Authorization matrix over every route of the OpenAPI document, and a restart."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time

import jwt
import websockets

from tests.server_helpers import ws_events_until

PUBLIC = {("/api/v1/health", "get"), ("/api/v1/auth/login", "post"), ("/api/v1/openapi.json", "get")}
SECRET_TEXT = "alice-private-words"


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _bad_tokens(server, good: str) -> dict[str, str]:
    secret = (server.data_dir / "jwt_secret").read_text().strip()
    claims = jwt.decode(good, options={"verify_signature": False})
    now = int(time.time())
    return {
        "none": "",
        "garbage": "not-a-token",
        "bad_signature": jwt.encode(claims, "another-secret", algorithm="HS256"),
        "expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, secret, algorithm="HS256"),
        "alg_none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64({**claims, "role": "admin"}) + ".",
        "hs512": jwt.encode(claims, secret, algorithm="HS512"),
    }


def _alice_session(server, token: str) -> tuple[str, str]:
    session = "web:chat:alice-only"

    async def body():
        async with websockets.connect(f"{server.ws_url}?token={token}") as ws:
            await ws.send(json.dumps({"type": "message", "session_id": session, "content": SECRET_TEXT}))
            events = await ws_events_until(ws, lambda e: e["type"] == "ready")
            return events[-1]["execution_id"]

    return session, asyncio.run(body())


def test_every_route_refuses_bad_tokens_and_never_leaks(server, admin_token):
    alice = server.add_user(admin_token, "alice")
    bob = server.add_user(admin_token, "bob")
    session, execution = _alice_session(server, alice)
    with server.client(admin_token) as c:
        alice_id = [u for u in c.get("/api/v1/users").json()["users"] if u["username"] == "alice"][0]["id"]
        spec = c.get("/api/v1/openapi.json").json()
    params = {"session_id": session, "execution_id": execution, "id": str(alice_id)}
    bodies = {"post": {"session_id": session}, "put": {"role": "admin"}, "patch": {"title": "stolen"}}
    routes = [(path, method) for path, ops in spec["paths"].items() for method in ops]
    assert len(routes) >= 15  # the matrix really covers the API
    bad = _bad_tokens(server, alice)
    checked = 0
    with server.client() as c:
        for path, method in routes:
            url = re.sub(r"{(\w+)(:\w+)?}", lambda m: params[m.group(1)], path)
            for name, token in {**bad, "bob": bob}.items():
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                r = c.request(method.upper(), url, headers=headers, json=bodies.get(method))
                assert r.status_code < 500, (method, url, name, r.status_code, r.text)
                assert SECRET_TEXT not in r.text and "alice-only" not in r.text, (method, url, name)
                if (path, method) not in PUBLIC:
                    if name == "bob":
                        assert r.status_code in (200, 403, 404, 409, 400), (method, url, r.status_code)
                    else:
                        assert r.status_code == 401, (method, url, name, r.status_code)
                        assert r.json() == {"error": "unauthorized"}
                checked += 1
            # the same token in ?token= is refused the same way
            r = c.request(method.upper(), url, params={"token": bad["expired"]}, json=bodies.get(method))
            assert r.status_code < 500 and ((path, method) in PUBLIC or r.status_code == 401)
    assert checked == len(routes) * 7
    assert "token=ey" not in server.log()  # tokens in URLs are redacted from the log
    # bob's cancel-all touched nothing of alice's, and alice still sees her own
    with server.client(alice) as c:
        assert c.get(f"/api/v1/chat/sessions/{session}").json()["messages"][0]["content"] == SECRET_TEXT
        assert c.get(f"/api/v1/executions/{execution}").status_code == 200
        assert c.get("/api/v1/chat/sessions").json()["sessions"][0]["title"] != "stolen"


def test_users_see_and_cancel_only_their_own(server, admin_token):
    alice = server.add_user(admin_token, "alice")
    bob = server.add_user(admin_token, "bob")

    async def body():
        async with websockets.connect(f"{server.ws_url}?token={alice}") as ws:
            await ws.send(json.dumps({"type": "message", "session_id": "web:chat:a", "content": "/sleep 20"}))
            await ws_events_until(ws, lambda e: e["type"] == "stream")
            with server.client(bob) as c:
                bob_active = c.get("/api/v1/chat/active").json()
                bob_cancel = c.post("/api/v1/chat/cancel", json={"all": True}).json()
                bob_sessions = c.get("/api/v1/chat/sessions").json()["sessions"]
            with server.client(admin_token) as c:
                admin_active = c.get("/api/v1/chat/active").json()
                admin_cancel = c.post("/api/v1/chat/cancel", json={"all": True}).json()
            return bob_active, bob_cancel, bob_sessions, admin_active, admin_cancel

    bob_active, bob_cancel, bob_sessions, admin_active, admin_cancel = asyncio.run(body())
    assert bob_active == [] and bob_cancel["canceled"] == 0 and bob_sessions == []
    assert [a["user"] for a in admin_active] == ["alice"]
    assert admin_cancel["canceled"] == 1 and admin_cancel["executions"][0]["state"] == "canceled"


def test_restart_keeps_users_sessions_messages_and_executions(start_server):
    server = start_server()
    admin = server.login()
    alice = server.add_user(admin, "alice")
    session, execution = _alice_session(server, alice)
    assert server.stop() == 0
    server.start()
    alice = server.login("alice", "user-pass-123")
    with server.client(alice) as c:
        messages = c.get(f"/api/v1/chat/sessions/{session}").json()["messages"]
        record = c.get(f"/api/v1/executions/{execution}").json()
        sessions = c.get("/api/v1/chat/sessions").json()["sessions"]
    assert [m["role"] for m in messages] == ["user", "assistant"] and messages[0]["content"] == SECRET_TEXT
    assert record["state"] == "completed" and record["user"] == "alice"
    assert sessions[0]["session_id"] == session and sessions[0]["message_count"] == 2


def test_metrics_and_openapi(server, admin_token):
    _alice_session(server, admin_token)
    with server.client(admin_token) as c:
        text = c.get("/metrics").text
        spec = c.get("/api/v1/openapi.json").json()
    assert 'kakoclaw_executions_total{state="completed"} 1.0' in text
    for name in ("kakoclaw_executions_running", "kakoclaw_executions_queued", "kakoclaw_cancel_latency_seconds_bucket",
                 "kakoclaw_subscribers", "kakoclaw_events_published"):
        assert name in text
    assert {"/api/v1/chat/cancel", "/api/v1/chat/active", "/api/v1/chat/sessions", "/api/v1/auth/login"} <= set(spec["paths"])


def test_nobody_can_listen_in_on_a_session_before_its_owner_writes(server, admin_token):
    alice = server.add_user(admin_token, "alice")
    bob = server.add_user(admin_token, "bob")

    async def body():
        async with websockets.connect(f"{server.ws_url}?token={bob}") as spy:
            await spy.send(json.dumps({"type": "subscribe", "session_id": "web:chat:future"}))
            await ws_events_until(spy, lambda e: e["type"] == "subscribed")
            async with websockets.connect(f"{server.ws_url}?token={alice}") as ws:
                await ws.send(json.dumps({"type": "message", "session_id": "web:chat:future", "content": "mine"}))
                return (await ws_events_until(ws, lambda e: e["type"] == "error"))[-1]

    refused = asyncio.run(body())
    assert refused["code"] == "forbidden"
