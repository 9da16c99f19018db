"""The auth and user routes on a real uvicorn server on a loopback port, over real HTTP."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from supervisor.api import auth_routes, users
from supervisor.api.errors import exception_handlers
from supervisor.auth import Authenticator, bootstrap_admin, encode_token, hash_password
from supervisor.config import load_settings
from supervisor.store import Store

ADMIN_PASSWORD = "admin password 1"


async def _boom(request):
    raise RuntimeError("secret internals")


def build_app(data_dir: Path) -> Starlette:
    settings = load_settings({}, storage_path=str(data_dir), web_password=ADMIN_PASSWORD)
    store = Store.open(settings.data_dir)
    bootstrap_admin(store, settings)
    app = Starlette(
        routes=[*auth_routes.routes, *users.routes, Route("/boom", _boom)],
        exception_handlers=exception_handlers,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.auth = Authenticator.from_settings(store, settings)
    return app


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run `app` on a free loopback port in a background thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        app.state.store.close()


@pytest.fixture
def app(tmp_path):
    return build_app(tmp_path / "data")


@pytest.fixture
def client(app) -> Iterator[httpx.Client]:
    with serve(app) as url, httpx.Client(base_url=url, trust_env=False, timeout=30) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(app: Starlette, username: str) -> str:
    auth: Authenticator = app.state.auth
    return auth.mint_token(app.state.store.get_user_by_name(username))[0]


def add_user(app: Starlette, username: str, password: str = "user password", role: str = "user") -> str:
    app.state.store.create_user(username, hash_password(password), role)
    return token_for(app, username)


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "unauthorized"}


# -- login and me -----------------------------------------------------------------------


def test_login_then_me(client):
    r = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"token", "expires_at"}
    assert body["expires_at"].endswith("Z")
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["username"] == "admin" and claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 24 * 3600
    me = client.get("/api/v1/auth/me", headers=bearer(body["token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "admin" and me.json()["role"] == "admin"
    via_query = client.get("/api/v1/auth/me", params={"token": body["token"]})
    assert via_query.status_code == 200 and via_query.json()["username"] == "admin"


def test_login_failures(client):
    r = client.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong password"})
    assert r.status_code == 401 and r.json() == {"error": "invalid credentials"}
    r = client.post("/api/v1/auth/login", json={"username": "ghost", "password": ADMIN_PASSWORD})
    assert r.status_code == 401 and r.json() == {"error": "invalid credentials"}
    r = client.post("/api/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json() == {"error": "invalid JSON body"}
    r = client.post("/api/v1/auth/login", json=["admin", ADMIN_PASSWORD])
    assert r.status_code == 400 and r.json() == {"error": "invalid JSON body"}
    r = client.post("/api/v1/auth/login", json={"username": 7, "password": ADMIN_PASSWORD})
    assert r.status_code == 400 and r.json() == {"error": "username must be a string"}
    r = client.post("/api/v1/auth/login", json={"username": "admin"})
    assert r.status_code == 400 and r.json() == {"error": "password is required"}
    r = client.post("/api/v1/auth/login", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json() == {"error": "invalid JSON body"}


def test_login_rate_limit(client):
    for _ in range(5):
        r = client.post("/api/v1/auth/login", json={"username": "admin", "password": "guess"})
        assert r.status_code == 401
    r = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 429
    assert "error" in r.json()
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_bad_tokens_are_unauthorized(app, client):
    admin = app.state.store.get_user_by_name("admin")
    secret = app.state.auth.secret
    now = int(time.time())
    good_claims = {"sub": str(admin.id), "username": "admin", "role": "admin", "ver": admin.token_version,
                   "iat": now, "exp": now + 600}  # fmt: skip

    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    expired, _ = encode_token(admin, secret, 60, now=now - 3600)
    bad_signature = jwt.encode(good_claims, "another secret that is long enough for sha256", algorithm="HS256")
    alg_none = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(good_claims)}."
    other_alg = jwt.encode(good_claims, secret, algorithm="HS512")
    wrong_version = jwt.encode({**good_claims, "ver": admin.token_version + 1}, secret, algorithm="HS256")
    unknown_user = jwt.encode({**good_claims, "sub": "999"}, secret, algorithm="HS256")
    huge_user = jwt.encode({**good_claims, "sub": "9" * 40}, secret, algorithm="HS256")

    assert_unauthorized(client.get("/api/v1/auth/me"))
    for token in (expired, bad_signature, alg_none, other_alg, wrong_version, unknown_user, huge_user, "junk"):
        assert_unauthorized(client.get("/api/v1/auth/me", headers=bearer(token)))
        assert_unauthorized(client.get("/api/v1/auth/me", params={"token": token}))
        assert_unauthorized(client.get("/api/v1/users", headers=bearer(token)))
    assert_unauthorized(client.get("/api/v1/auth/me", headers={"Authorization": f"Basic {secret}"}))
    assert client.get("/api/v1/auth/me", headers=bearer(jwt.encode(good_claims, secret))).status_code == 200


# -- change password --------------------------------------------------------------------


def test_change_password_revokes_old_tokens(client):
    old = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    other_old = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    r = client.post("/api/v1/auth/change-password", headers=bearer(old),
                    json={"old_password": "not it", "new_password": "brand new password"})  # fmt: skip
    assert r.status_code == 400 and "old password" in r.json()["error"]
    r = client.post("/api/v1/auth/change-password", headers=bearer(old),
                    json={"old_password": ADMIN_PASSWORD, "new_password": "short"})  # fmt: skip
    assert r.status_code == 400 and "at least 8" in r.json()["error"]
    r = client.post("/api/v1/auth/change-password", headers=bearer(old), json={"old_password": ADMIN_PASSWORD})
    assert r.status_code == 400 and r.json() == {"error": "new_password is required"}
    assert_unauthorized(client.post("/api/v1/auth/change-password",
                                    json={"old_password": ADMIN_PASSWORD, "new_password": "brand new password"}))  # fmt: skip

    r = client.post("/api/v1/auth/change-password", headers=bearer(old),
                    json={"old_password": ADMIN_PASSWORD, "new_password": "brand new password"})  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert_unauthorized(client.get("/api/v1/auth/me", headers=bearer(old)))
    assert_unauthorized(client.get("/api/v1/auth/me", headers=bearer(other_old)))
    assert client.get("/api/v1/auth/me", headers=bearer(r.json()["token"])).status_code == 200
    login_old = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login_old.status_code == 401
    login_new = client.post("/api/v1/auth/login", json={"username": "admin", "password": "brand new password"})
    assert login_new.status_code == 200


# -- users ------------------------------------------------------------------------------


def test_users_crud(app, client):
    admin = bearer(token_for(app, "admin"))
    listed = client.get("/api/v1/users", headers=admin)
    assert listed.status_code == 200
    assert [(u["username"], u["role"]) for u in listed.json()["users"]] == [("admin", "admin")]

    r = client.post("/api/v1/users", headers=admin, json={"username": "bob", "password": "bob password", "role": "user"})
    assert r.status_code == 201, r.text
    bob = r.json()
    assert bob["username"] == "bob" and bob["role"] == "user" and isinstance(bob["id"], int)
    assert "password" not in json.dumps(bob) and "hash" not in json.dumps(bob)
    login = client.post("/api/v1/auth/login", json={"username": "bob", "password": "bob password"})
    assert login.status_code == 200
    bob_token = login.json()["token"]

    r = client.post("/api/v1/users", headers=admin, json={"username": "bob", "password": "another password"})
    assert r.status_code == 409 and "exists" in r.json()["error"]
    r = client.post("/api/v1/users", headers=admin, json={"username": "carl", "password": "carl password", "role": "root"})
    assert r.status_code == 400 and r.json() == {"error": "role must be admin or user"}
    r = client.post("/api/v1/users", headers=admin, json={"username": "carl", "password": "short"})
    assert r.status_code == 400 and "at least 8" in r.json()["error"]
    r = client.post("/api/v1/users", headers=admin, json={"username": "carl", "password": ""})
    assert r.status_code == 400
    r = client.post("/api/v1/users", headers=admin, json={"username": "has space", "password": "long enough"})
    assert r.status_code == 400
    r = client.post("/api/v1/users", headers=admin, json={"username": "", "password": "long enough"})
    assert r.status_code == 400
    r = client.post("/api/v1/users", headers=admin, json={"username": "carl", "password": 12345678})
    assert r.status_code == 400 and r.json() == {"error": "password must be a string"}
    r = client.post("/api/v1/users", headers=admin, json={"username": "dora", "password": "dora password"})
    assert r.status_code == 201 and r.json()["role"] == "user"  # the default role

    r = client.put(f"/api/v1/users/{bob['id']}", headers=admin, json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    assert client.get("/api/v1/auth/me", headers=bearer(bob_token)).json()["role"] == "admin"
    r = client.put(f"/api/v1/users/{bob['id']}", headers=admin, json={"role": "boss"})
    assert r.status_code == 400
    r = client.put(f"/api/v1/users/{bob['id']}", headers=admin, json={"password": "short"})
    assert r.status_code == 400
    r = client.put(f"/api/v1/users/{bob['id']}", headers=admin, json={"password": "reset by admin"})
    assert r.status_code == 200
    assert_unauthorized(client.get("/api/v1/auth/me", headers=bearer(bob_token)))  # revoked
    assert client.post("/api/v1/auth/login", json={"username": "bob", "password": "reset by admin"}).status_code == 200
    assert client.put("/api/v1/users/999", headers=admin, json={"role": "user"}).status_code == 404
    assert client.put(f"/api/v1/users/{'9' * 30}", headers=admin, json={"role": "user"}).status_code == 404
    assert client.put("/api/v1/users/abc", headers=admin, json={"role": "user"}).status_code == 404

    r = client.delete(f"/api/v1/users/{bob['id']}", headers=admin)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert client.delete(f"/api/v1/users/{bob['id']}", headers=admin).status_code == 404
    assert client.delete(f"/api/v1/users/{'9' * 30}", headers=admin).status_code == 404
    assert [u["username"] for u in client.get("/api/v1/users", headers=admin).json()["users"]] == ["admin", "dora"]
    reborn = client.post("/api/v1/auth/login", json={"username": "bob", "password": "reset by admin"})
    assert reborn.status_code == 401


def test_deleted_users_token_stops_working(app, client):
    eve = add_user(app, "eve")
    assert client.get("/api/v1/auth/me", headers=bearer(eve)).status_code == 200
    eve_id = app.state.store.get_user_by_name("eve").id
    assert client.delete(f"/api/v1/users/{eve_id}", headers=bearer(token_for(app, "admin"))).status_code == 200
    assert_unauthorized(client.get("/api/v1/auth/me", headers=bearer(eve)))


def test_last_admin_is_protected(app, client):
    admin_id = app.state.store.get_user_by_name("admin").id
    admin = bearer(token_for(app, "admin"))
    r = client.delete(f"/api/v1/users/{admin_id}", headers=admin)
    assert r.status_code == 409 and "last admin" in r.json()["error"]
    r = client.put(f"/api/v1/users/{admin_id}", headers=admin, json={"role": "user"})
    assert r.status_code == 409 and "last admin" in r.json()["error"]
    assert client.get("/api/v1/auth/me", headers=admin).json()["role"] == "admin"
    # With a second admin, the first may step down.
    second = client.post("/api/v1/users", headers=admin, json={"username": "second", "password": "second pw!", "role": "admin"})
    assert second.status_code == 201
    assert client.put(f"/api/v1/users/{admin_id}", headers=admin, json={"role": "user"}).status_code == 200
    second_token = bearer(token_for(app, "second"))
    r = client.delete(f"/api/v1/users/{second.json()['id']}", headers=second_token)
    assert r.status_code == 409


def test_user_role_gets_403_on_admin_routes(app, client):
    token = bearer(add_user(app, "plain"))
    admin_id = app.state.store.get_user_by_name("admin").id
    calls = [
        client.get("/api/v1/users", headers=token),
        client.post("/api/v1/users", headers=token, json={"username": "x", "password": "long enough"}),
        client.put(f"/api/v1/users/{admin_id}", headers=token, json={"role": "user"}),
        client.delete(f"/api/v1/users/{admin_id}", headers=token),
    ]
    for r in calls:
        assert r.status_code == 403 and r.json() == {"error": "forbidden"}
    assert client.get("/api/v1/auth/me", headers=token).json() == {
        "id": app.state.store.get_user_by_name("plain").id, "username": "plain", "role": "user",
    }  # fmt: skip
    assert app.state.store.get_user_by_name("x") is None
    assert app.state.store.get_user(admin_id).role == "admin"


def test_every_route_without_a_token_is_401(client):
    for method, path in [("GET", "/api/v1/auth/me"), ("POST", "/api/v1/auth/change-password"),
                         ("GET", "/api/v1/users"), ("POST", "/api/v1/users"),
                         ("PUT", "/api/v1/users/1"), ("DELETE", "/api/v1/users/1")]:  # fmt: skip
        assert_unauthorized(client.request(method, path, json={}))


# -- errors -----------------------------------------------------------------------------


def test_errors_are_json(client):
    r = client.get("/api/v1/nowhere")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = client.get("/api/v1/auth/login")
    assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed"}
    r = client.post("/api/v1/auth/login", content=b"x" * (1024 * 1024 + 1))
    assert r.status_code == 413 and r.json() == {"error": "request body too large"}
    # Last: after an unhandled error the server closes the connection.
    r = client.get("/boom")
    assert r.status_code == 500 and r.json() == {"error": "internal server error"}
    assert "secret internals" not in r.text


# -- restart ----------------------------------------------------------------------------


def test_restart_keeps_users_and_tokens(tmp_path):
    data = tmp_path / "data"
    app = build_app(data)
    with serve(app) as url, httpx.Client(base_url=url, trust_env=False, timeout=30) as c:
        admin = bearer(token_for(app, "admin"))
        assert c.post("/api/v1/users", headers=admin, json={"username": "kept", "password": "kept password"}).status_code == 201
        kept_token = c.post("/api/v1/auth/login", json={"username": "kept", "password": "kept password"}).json()["token"]

    again = build_app(data)  # a new Store and Authenticator on the same files
    with serve(again) as url, httpx.Client(base_url=url, trust_env=False, timeout=30) as c:
        assert c.get("/api/v1/auth/me", headers=bearer(kept_token)).json()["username"] == "kept"
        assert c.post("/api/v1/auth/login", json={"username": "kept", "password": "kept password"}).status_code == 200
        assert c.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 200
        names = [u["username"] for u in c.get("/api/v1/users", headers=bearer(token_for(again, "admin"))).json()["users"]]
        assert names == ["admin", "kept"]


# -- the OpenAPI blocks -----------------------------------------------------------------


def test_route_docstrings_are_openapi():
    pytest.importorskip("yaml")
    from starlette.schemas import SchemaGenerator

    schema = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "t", "version": "1"}}).get_schema(
        [*auth_routes.routes, *users.routes]
    )
    paths = schema["paths"]
    assert set(paths) == {"/api/v1/auth/login", "/api/v1/auth/me", "/api/v1/auth/change-password",
                          "/api/v1/users", "/api/v1/users/{id}"}  # fmt: skip
    assert set(paths["/api/v1/users"]) == {"get", "post"}
    assert set(paths["/api/v1/users/{id}"]) == {"put", "delete"}
    for ops in paths.values():
        for op in ops.values():
            assert op["summary"] and op["responses"]
