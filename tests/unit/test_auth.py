"""Passwords, the signing secret, tokens, the login rate limit and the first admin."""

from __future__ import annotations

import base64
import io
import json
import multiprocessing
import stat
import time

import jwt
import pytest
from starlette.requests import Request

from supervisor.auth import (
    AuthError,
    Authenticator,
    LoginRateLimiter,
    RateLimited,
    bootstrap_admin,
    check_new_password,
    check_username,
    decode_token,
    encode_token,
    hash_password,
    load_or_create_secret,
    read_secret,
    token_from_request,
    verify_password,
)
from supervisor.config import load_settings
from supervisor.store import Store

SECRET = "s" * 64


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path)
    yield s
    s.close()


@pytest.fixture
def user(store):
    return store.create_user("alice", hash_password("correct horse"), "user")


@pytest.fixture
def auth(store, tmp_path):
    return Authenticator(store, load_or_create_secret(tmp_path), expiry_s=3600)


def unsigned(claims: dict) -> str:
    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


# -- passwords ----------------------------------------------------------------------------


def test_password_hash_is_argon2id_and_verifies():
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert "correct horse" not in h
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "wrong horse")
    assert not verify_password("not a hash", "correct horse")
    assert hash_password("correct horse") != h  # salted


def test_username_rules():
    assert check_username("bob@example.org") == "bob@example.org"
    for bad in ("", "a b", "a/b", "a\\b", "x" * 65, "tab\t", 7):
        with pytest.raises(ValueError):
            check_username(bad)


def test_new_password_rules():
    assert check_new_password("12345678") == "12345678"
    with pytest.raises(ValueError, match="at least 8"):
        check_new_password("1234567")
    with pytest.raises(ValueError, match="string"):
        check_new_password(12345678)


# -- the secret -------------------------------------------------------------------------


def test_secret_created_private_and_stable(tmp_path):
    data = tmp_path / "new" / "dir"
    secret = load_or_create_secret(data)
    assert len(secret) >= 64
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "jwt_secret").stat().st_mode) == 0o600
    assert load_or_create_secret(data) == secret
    assert read_secret(data) == secret
    assert [p.name for p in data.iterdir()] == ["jwt_secret"]  # no temporary files left


def test_secret_mode_is_tightened(tmp_path):
    secret = load_or_create_secret(tmp_path)
    (tmp_path / "jwt_secret").chmod(0o644)
    assert load_or_create_secret(tmp_path) == secret
    assert stat.S_IMODE((tmp_path / "jwt_secret").stat().st_mode) == 0o600


def test_missing_or_empty_secret_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_secret(tmp_path)
    (tmp_path / "jwt_secret").write_text("\n")
    with pytest.raises(ValueError, match="no usable secret"):
        read_secret(tmp_path)


def _load_secret(path: str, queue) -> None:
    queue.put(load_or_create_secret(path))


def test_processes_starting_at_once_share_one_secret(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_load_secret, args=(str(tmp_path / "d"), queue)) for _ in range(4)]
    for p in procs:
        p.start()
    secrets = {queue.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    assert len(secrets) == 1


# -- tokens -----------------------------------------------------------------------------


def test_token_claims(user):
    token, exp = encode_token(user, SECRET, 60, now=1_000_000_000 + 0.7)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sub": str(user.id), "username": "alice", "role": "user", "ver": 1,
                      "iat": 1_000_000_000, "exp": 1_000_000_060}  # fmt: skip
    assert exp == 1_000_000_060
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_decode_rejects_bad_tokens(user):
    good, _ = encode_token(user, SECRET, 60)
    assert decode_token(good, SECRET)["sub"] == str(user.id)
    expired, _ = encode_token(user, SECRET, 60, now=time.time() - 3600)
    with pytest.raises(AuthError, match="expired"):
        decode_token(expired, SECRET)
    with pytest.raises(AuthError):
        decode_token(good, "another secret of enough length for hmac sha256 keys")
    claims = {"sub": str(user.id), "ver": 1, "iat": int(time.time()), "exp": int(time.time()) + 60}
    with pytest.raises(AuthError):
        decode_token(unsigned(claims), SECRET)
    with pytest.raises(AuthError):  # the right secret, another algorithm
        decode_token(jwt.encode(claims, SECRET, algorithm="HS512"), SECRET)
    with pytest.raises(AuthError):  # no exp
        decode_token(jwt.encode({"sub": "1", "ver": 1, "iat": 1}, SECRET, algorithm="HS256"), SECRET)
    with pytest.raises(AuthError):
        decode_token(good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"), SECRET)
    for junk in ("", "abc", "a.b.c", "😀.😀.😀"):
        with pytest.raises(AuthError):
            decode_token(junk, SECRET)


def test_user_from_token_checks_version_and_existence(auth, store, user):
    token, expires_at = auth.mint_token(user)
    assert expires_at.endswith("Z") and len(expires_at) == 20
    assert auth.user_from_token(token) == user
    store.update_user(user.id, role="admin")
    assert auth.user_from_token(token).role == "admin"  # the stored role counts
    store.update_user(user.id, password_hash=hash_password("new password"))
    with pytest.raises(AuthError):
        auth.user_from_token(token)
    fresh, _ = auth.mint_token(store.get_user(user.id))
    assert auth.user_from_token(fresh).id == user.id
    store.create_user("keeper", "h", "admin")
    store.delete_user(user.id)
    with pytest.raises(AuthError):
        auth.user_from_token(fresh)
    with pytest.raises(AuthError):
        auth.user_from_token(None)


def test_login_and_change_password(auth, store, user):
    token, _ = auth.login("alice", "correct horse", "10.0.0.1")
    assert auth.user_from_token(token).username == "alice"
    with pytest.raises(AuthError, match="invalid credentials"):
        auth.login("alice", "wrong", "10.0.0.2")
    with pytest.raises(AuthError, match="invalid credentials"):
        auth.login("nobody", "correct horse", "10.0.0.3")
    with pytest.raises(AuthError, match="old password"):
        auth.change_password(user, "wrong", "a new password")
    with pytest.raises(ValueError):
        auth.change_password(user, "correct horse", "short")
    updated = auth.change_password(user, "correct horse", "a new password")
    assert updated.token_version == user.token_version + 1
    with pytest.raises(AuthError):
        auth.user_from_token(token)
    assert auth.login("alice", "a new password", "10.0.0.4")[0]


def test_login_rate_limit_per_client(auth, user):
    for _ in range(5):
        with pytest.raises(AuthError):
            auth.login("alice", "wrong", "10.0.0.9")
    with pytest.raises(RateLimited) as info:
        auth.login("alice", "correct horse", "10.0.0.9")
    assert 0 < info.value.retry_after <= 60
    assert auth.login("alice", "correct horse", "10.0.0.10")[0]  # another client


def test_token_from_request():
    def request(headers=(), query=b"") -> Request:
        return Request({"type": "http", "method": "GET", "path": "/", "headers": list(headers),
                        "query_string": query})  # fmt: skip

    assert token_from_request(request([(b"authorization", b"Bearer abc.def.ghi")])) == "abc.def.ghi"
    assert token_from_request(request([(b"authorization", b"bearer  xyz")])) == "xyz"
    assert token_from_request(request(query=b"token=q.r.s")) == "q.r.s"
    assert token_from_request(request([(b"authorization", b"Bearer h")], b"token=q")) == "h"
    assert token_from_request(request([(b"authorization", b"Basic dXNlcjpwdw==")])) is None
    assert token_from_request(request()) is None


# -- the rate limiter ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_sliding_window():
    clock = Clock()
    limiter = LoginRateLimiter(attempts=5, window_s=60, clock=clock)
    for i in range(5):
        limiter.hit("ip")
        clock.now += 10
    with pytest.raises(RateLimited) as info:  # t=1050: the first attempt (t=1000) is still in the window
        limiter.hit("ip")
    assert info.value.retry_after == pytest.approx(10)
    limiter.hit("other")
    clock.now = 1060.5  # the first attempt has left the window
    limiter.hit("ip")
    with pytest.raises(RateLimited):
        limiter.hit("ip")


def test_rate_limiter_memory_is_bounded():
    clock = Clock()
    limiter = LoginRateLimiter(attempts=5, window_s=60, max_keys=100, clock=clock)
    for i in range(1000):
        limiter.hit(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100
    clock.now += 61
    limiter.hit("late")
    assert len(limiter) == 1  # expired keys are dropped


# -- first start ------------------------------------------------------------------------


def test_bootstrap_admin_generates_and_prints_a_password_once(store, tmp_path):
    settings = load_settings({}, storage_path=str(tmp_path))
    out = io.StringIO()
    password = bootstrap_admin(store, settings, out)
    assert password and len(password) >= 16
    assert password in out.getvalue() and "admin" in out.getvalue()
    admin = store.get_user_by_name("admin")
    assert admin.role == "admin" and verify_password(admin.password_hash, password)
    again = io.StringIO()
    assert bootstrap_admin(store, settings, again) is None
    assert again.getvalue() == ""
    assert store.count_users() == 1


def test_bootstrap_admin_uses_configured_credentials_without_printing(store, tmp_path):
    settings = load_settings(
        {"KAKOCLAW_WEB_USERNAME": "boss", "KAKOCLAW_WEB_PASSWORD": "configured pw"}, storage_path=str(tmp_path)
    )
    out = io.StringIO()
    assert bootstrap_admin(store, settings, out) == "configured pw"
    assert out.getvalue() == ""
    boss = store.get_user_by_name("boss")
    assert boss.role == "admin" and verify_password(boss.password_hash, "configured pw")


def test_bootstrap_admin_leaves_an_existing_admin_alone(store, tmp_path):
    store.create_user("chief", hash_password("chief password"), "admin")
    settings = load_settings({"KAKOCLAW_WEB_PASSWORD": "configured pw"}, storage_path=str(tmp_path))
    assert bootstrap_admin(store, settings, io.StringIO()) is None
    assert store.get_user_by_name("admin") is None


def test_bootstrap_admin_when_only_plain_users_exist(store, tmp_path, user):
    # e.g. `kakoclaw user add alice` ran before the first start
    settings = load_settings({}, storage_path=str(tmp_path))
    assert bootstrap_admin(store, settings, io.StringIO())
    assert store.get_user_by_name("admin").role == "admin"
    taken = load_settings({"KAKOCLAW_WEB_USERNAME": "alice"}, storage_path=str(tmp_path))
    other = Store.open(tmp_path / "other")
    other.create_user("alice", "h", "user")
    out = io.StringIO()
    assert bootstrap_admin(other, taken, out) is None
    assert "kakoclaw user add" in out.getvalue() and other.get_user_by_name("alice").role == "user"
    other.close()
