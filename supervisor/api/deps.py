"""Who is asking: the user behind a request's token, and the admin check."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from ..auth import AuthError, Authenticator
from ..store import User


def require_user(conn: HTTPConnection) -> User:
    """The authenticated user of a request (or WebSocket), via `app.state.auth`.

    Raises HTTPException 401 "unauthorized" for a missing, invalid, expired or revoked
    token. The user is also kept in `conn.state.user`.
    """
    auth: Authenticator = conn.app.state.auth
    try:
        user = auth.authenticate(conn)
    except AuthError:
        raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"}) from None
    conn.state.user = user
    return user


def require_admin(conn: HTTPConnection) -> User:
    """Like `require_user`, and HTTPException 403 "forbidden" unless the user is an admin."""
    user = require_user(conn)
    if not user.is_admin:
        raise HTTPException(403, "forbidden")
    return user
