"""Authentication: password hashing, JWTs, the login rate limit and the first admin.

Passwords are hashed with Argon2id (memory-hard). Tokens are HS256 JWTs signed with a
random secret kept in `<data_dir>/jwt_secret` (mode 0600). A token carries the user's id
(`sub`), name, role and `ver`, the user's token version: changing a password bumps the
version, so every token issued before stops working; so does deleting the user. The role
that counts is the one in the database, read on every request.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .store import Store, User, UsernameTaken, ensure_private_dir

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

    from .config import Settings

ALGORITHM = "HS256"
SECRET_FILENAME = "jwt_secret"
MIN_PASSWORD_LENGTH = 8
USERNAME = re.compile(r"[^\s/\\]{1,64}")
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW_S = 60.0

_hasher = PasswordHasher()
# Each hash or check takes 64 MiB for about 0.1 s: bound how many run at once, so a burst
# of logins cannot take the machine's memory.
_hash_slots = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))


class AuthError(Exception):
    """Authentication failed; `str(exc)` is safe to show the client."""


class RateLimited(AuthError):
    """Too many login attempts from one client; retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many login attempts, try again later")
        self.retry_after = retry_after


# -- passwords ----------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """An Argon2id hash of `password` (about 0.1 s of CPU and 64 MiB: call it off the event loop)."""
    with _hash_slots:
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        with _hash_slots:
            return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    # Verified against when a login names an unknown user, so that the answer takes as long
    # as for a known one and its timing does not reveal which names exist.
    return _hasher.hash(secrets.token_hex(16))


def check_new_password(password: object) -> str:
    """`password` if it is acceptable as a new password; ValueError (with a message for the user) if not."""
    if not isinstance(password, str):
        raise ValueError("password must be a string")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    return password


def check_username(username: object) -> str:
    """`username` if it is acceptable for a new user (1 to 64 characters, no whitespace or
    slashes); ValueError with a message for the user if not."""
    if not isinstance(username, str):
        raise ValueError("username must be a string")
    if not USERNAME.fullmatch(username):
        raise ValueError("username must be 1 to 64 characters without spaces or slashes")
    return username


def generate_password() -> str:
    """A random password of 20 URL-safe characters (120 bits)."""
    return secrets.token_urlsafe(15)


# -- the signing secret -------------------------------------------------------------------


def secret_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / SECRET_FILENAME


def read_secret(data_dir: str | Path) -> str:
    """The existing secret of `data_dir`: FileNotFoundError if there is none, ValueError if
    the file does not hold one."""
    path = secret_path(data_dir)
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret (delete it and a new one is made on the next start)")
    return secret


def load_or_create_secret(data_dir: str | Path) -> str:
    """The JWT signing secret of `data_dir`, created on first use.

    The data directory is created with mode 0700 and the secret file with mode 0600 (a
    looser mode on an existing file is tightened). Creation is atomic: processes starting
    at once end up with the same secret.
    """
    directory = ensure_private_dir(data_dir)
    path = secret_path(directory)
    if not path.exists():
        tmp = directory / f".{SECRET_FILENAME}.{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)  # fails if another process got there first: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return read_secret(directory)


# -- tokens -------------------------------------------------------------------------------


def encode_token(user: User, secret: str, expires_in: float, now: float | None = None) -> tuple[str, int]:
    """A signed token for `user` valid `expires_in` seconds; returns (token, exp as Unix time)."""
    issued = int(time.time() if now is None else now)
    exp = issued + max(1, int(expires_in))
    claims = {
        "sub": str(user.id),
        "username": user.username,
        "role": user.role,
        "ver": user.token_version,
        "iat": issued,
        "exp": exp,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), exp


def decode_token(token: str, secret: str) -> dict[str, Any]:
    """The claims of a valid token: HS256 only, signature and `exp` checked; AuthError if not."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "iat", "ver"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.PyJWTError:
        raise AuthError("invalid token") from None
    if not str(claims["sub"]).isdigit() or not isinstance(claims["ver"], int):
        raise AuthError("invalid token")
    return claims


def token_from_request(conn: HTTPConnection) -> str | None:
    """The token a request or WebSocket carries: `Authorization: Bearer <token>`, else the
    `token` query parameter (the only way a browser's WebSocket can send one)."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return conn.query_params.get("token") or None


# -- the login rate limit -----------------------------------------------------------------


class LoginRateLimiter:
    """At most `attempts` login attempts per `window_s` seconds per client key (an IP).

    Sliding window. Memory stays bounded: keys whose attempts have all expired are dropped,
    and beyond `max_keys` the least recently seen keys are evicted.
    """

    def __init__(
        self,
        attempts: int = LOGIN_ATTEMPTS,
        window_s: float = LOGIN_WINDOW_S,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Count one attempt by `key`; raises RateLimited (without counting) if it has no attempts left."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.attempts:
                raise RateLimited(retry_after=max(0.0, hits[0] + self.window_s - now))
            hits.append(now)
            self._hits.move_to_end(key)
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)

    def __len__(self) -> int:
        return len(self._hits)

    def _expire(self, now: float) -> None:
        # Keys are in least-recently-seen order: stop at the first one still in its window.
        while self._hits:
            key, hits = next(iter(self._hits.items()))
            if hits and hits[-1] > now - self.window_s:
                break
            del self._hits[key]


# -- the authenticator the web app uses ---------------------------------------------------


class Authenticator:
    """Logins and token checks for one store: `app.state.auth`.

    `login` and `change_password` hash passwords (slow, CPU-bound): call them from a worker
    thread (`starlette.concurrency.run_in_threadpool`). `user_from_token` is quick.
    """

    def __init__(
        self, store: Store, secret: str, expiry_s: float, limiter: LoginRateLimiter | None = None
    ) -> None:
        self.store = store
        self.secret = secret
        self.expiry_s = expiry_s
        self.limiter = limiter or LoginRateLimiter()

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> Authenticator:
        """An Authenticator with the data dir's secret (created if missing) and the configured expiry."""
        return cls(store, load_or_create_secret(settings.data_dir), settings.web_jwt_expiry)

    def mint_token(self, user: User, expires_in: float | None = None) -> tuple[str, str]:
        """A token for `user`; returns (token, expires_at as ISO 8601 UTC)."""
        token, exp = encode_token(user, self.secret, self.expiry_s if expires_in is None else expires_in)
        return token, datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def login(self, username: str, password: str, client: str) -> tuple[str, str]:
        """(token, expires_at) for valid credentials. Raises RateLimited when `client` has
        used its attempts for the minute, AuthError("invalid credentials") otherwise."""
        self.limiter.hit(client)
        user = self.store.get_user_by_name(username)
        if user is None:
            verify_password(_dummy_hash(), password)
            raise AuthError("invalid credentials")
        if not verify_password(user.password_hash, password):
            raise AuthError("invalid credentials")
        return self.mint_token(user)

    def user_from_token(self, token: str | None) -> User:
        """The user a token belongs to, as stored now; AuthError if the token is missing,
        malformed, badly signed, expired, or outdated (password changed, user deleted)."""
        if not token:
            raise AuthError("missing token")
        claims = decode_token(token, self.secret)
        user = self.store.get_user(int(claims["sub"]))
        if user is None or user.token_version != claims["ver"]:
            raise AuthError("token revoked")
        return user

    def authenticate(self, conn: HTTPConnection) -> User:
        """The user of a request or WebSocket (see `token_from_request`); AuthError if none."""
        return self.user_from_token(token_from_request(conn))

    token_from_request = staticmethod(token_from_request)

    def set_password(self, user: User, new_password: str) -> User:
        """Give `user` a new password (ValueError if it is too short); every token they
        held stops working. Returns the updated user."""
        check_new_password(new_password)
        updated = self.store.update_user(user.id, password_hash=hash_password(new_password))
        if updated is None:
            raise AuthError("user no longer exists")
        return updated

    def change_password(self, user: User, old_password: str, new_password: str) -> User:
        """`set_password` after checking the old one (AuthError if it is wrong)."""
        if not verify_password(user.password_hash, old_password):
            raise AuthError("old password is incorrect")
        return self.set_password(user, new_password)


# -- first start --------------------------------------------------------------------------


def bootstrap_admin(store: Store, settings: Settings, out: TextIO | None = None) -> str | None:
    """On first start (no admin yet), create `settings.web_username` as admin.

    Its password is `settings.web_password`, or a random one printed once to `out`
    (stderr by default). Returns the new admin's password, or None when an admin already
    existed (nothing is changed then, even if KAKOCLAW_WEB_PASSWORD differs). Users added
    with `kakoclaw user add` before the first start do not prevent this, unless one of them
    is an admin; if one of them already has the admin's name, it is left as it is (None).
    """
    if store.count_admins():
        return None
    password = settings.web_password or generate_password()
    try:
        store.create_user(settings.web_username, hash_password(password), "admin")
    except UsernameTaken:  # the name is in use (or another process created it just now)
        print(
            f"No admin user exists and the name {settings.web_username!r} is taken: "
            "create one with `kakoclaw user add <name> --role admin`.",
            file=out or sys.stderr,
            flush=True,
        )
        return None
    if not settings.web_password:
        print(
            f"Created the admin user {settings.web_username!r} with password: {password}\n"
            "This password is shown only once. Change it in the web interface or with `kakoclaw user passwd`.",
            file=out or sys.stderr,
            flush=True,
        )
    return password
