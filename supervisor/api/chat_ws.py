"""/ws/chat: send messages, subscribe to sessions (with after_seq), cancel, ping.

One reader loop per socket, one forwarding task per subscribed session, all owned by the
socket's task group. Closing the socket ends the subscriptions, never the executions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..auth import AuthError
from ..chat import DEFAULT_SESSION, ChatError, ChatService
from ..hub import Hub, Subscription
from ..store import User

log = logging.getLogger("kakoclaw.ws")

MAX_FRAME_CHARS = 512 * 1024  # larger frames get an error; the socket stays usable
SEND_TIMEOUT_S = 10.0  # a client that stops reading for this long is closed with 1013
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHORIZED = 4401


def _error(code: str, message: str, **extra: Any) -> str:
    return json.dumps({"type": "error", "code": code, "message": message, **extra})


class ChatSocket:
    def __init__(self, ws: WebSocket, user: User, chat: ChatService, hub: Hub) -> None:
        self.ws = ws
        self.user = user
        self.chat = chat
        self.hub = hub
        self.subs: dict[str, tuple[Subscription, asyncio.Task]] = {}
        self._send_lock = asyncio.Lock()
        self._tg: asyncio.TaskGroup | None = None

    async def send(self, text: str) -> None:
        async with self._send_lock:
            try:
                await asyncio.wait_for(self.ws.send_text(text), SEND_TIMEOUT_S)
            except asyncio.TimeoutError:
                try:
                    await self.ws.close(CLOSE_TRY_AGAIN, "client is not reading; reconnect with after_seq")
                except Exception:
                    pass
                raise WebSocketDisconnect(CLOSE_TRY_AGAIN) from None
            except (OSError, RuntimeError) as exc:  # the socket closed under us
                raise WebSocketDisconnect(1006) from exc

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                await self._read_loop()
                for sub, task in self.subs.values():
                    sub.close()
                    task.cancel()
        except* WebSocketDisconnect:
            pass
        finally:
            for sub, _ in self.subs.values():
                sub.close()

    async def _read_loop(self) -> None:
        while True:
            try:
                frame = await self.ws.receive()
            except WebSocketDisconnect:
                return
            if frame["type"] == "websocket.disconnect":
                return
            text = frame.get("text")
            if text is None:
                data = frame.get("bytes") or b""
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    await self.send(_error("bad_request", "binary frames must be UTF-8 JSON"))
                    continue
            await self.handle(text)

    async def handle(self, text: str) -> None:
        if len(text) > MAX_FRAME_CHARS:
            await self.send(_error("too_large", f"message is larger than {MAX_FRAME_CHARS} characters"))
            return
        stripped = text.lstrip()
        if not stripped.startswith(("{", "[")):
            # The original accepts plain text as a message for the default session.
            await self.on_message({"content": text, "session_id": DEFAULT_SESSION})
            return
        try:
            msg = json.loads(text)
        except ValueError as exc:
            await self.send(_error("invalid_json", f"frame is not valid JSON: {exc}"))
            return
        if not isinstance(msg, dict):
            await self.send(_error("bad_request", "frame must be a JSON object"))
            return
        mtype = msg.get("type", "message")
        handler = {
            "message": self.on_message,
            "subscribe": self.on_subscribe,
            "unsubscribe": self.on_unsubscribe,
            "cancel": self.on_cancel,
            "ping": self.on_ping,
        }.get(mtype) if isinstance(mtype, str) else None
        if handler is None:
            await self.send(_error("unknown_type", f"unknown message type {str(mtype)[:64]!r}; "
                                   "expected message, subscribe, unsubscribe, cancel or ping"))
            return
        try:
            await handler(msg)
        except ChatError as exc:
            await self.send(_error(exc.code, exc.message, session_id=msg.get("session_id")))

    @staticmethod
    def _field(msg: dict, name: str, kind: type | tuple, what: str, default: Any = None) -> Any:
        value = msg.get(name, default)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ChatError("bad_request", f"{name} must be {what}")
        return value

    async def on_message(self, msg: dict) -> None:
        content = self._field(msg, "content", str, "a string")
        if content is None:
            raise ChatError("bad_request", "content is required")
        session_id = self._field(msg, "session_id", str, "a string") or DEFAULT_SESSION
        model = self._field(msg, "model", str, "a string")
        web_search = self._field(msg, "web_search", bool, "a boolean")
        exclude = self._field(msg, "exclude_tools", list, "a list of tool names")
        if exclude is not None and not all(isinstance(x, str) for x in exclude):
            raise ChatError("bad_request", "exclude_tools must be a list of tool names")
        if session_id not in self.subs:
            self._subscribe(session_id, None)
        self.chat.start(self.user, session_id, content, model=model or None,
                        web_search=web_search, exclude_tools=exclude)

    async def on_subscribe(self, msg: dict) -> None:
        session_id = self._field(msg, "session_id", str, "a string") or DEFAULT_SESSION
        after = self._field(msg, "after_seq", int, "an integer")
        # Subscribing claims a new session id, so that nobody can listen in on a session
        # before its owner's first message creates it.
        session = self.chat.store.claim_session(session_id, self.user.id)
        if session.user_id != self.user.id and not self.user.is_admin:
            raise ChatError("forbidden", "this session belongs to another user")
        self._subscribe(session_id, after)
        await self.send(json.dumps({"type": "subscribed", "session_id": session_id,
                                    "seq": self.hub.last_seq(session_id)}))

    async def on_unsubscribe(self, msg: dict) -> None:
        session_id = self._field(msg, "session_id", str, "a string") or DEFAULT_SESSION
        if entry := self.subs.pop(session_id, None):
            entry[0].close()
            entry[1].cancel()

    async def on_cancel(self, msg: dict) -> None:
        session_id = self._field(msg, "session_id", str, "a string")
        execution_id = self._field(msg, "execution_id", str, "a string")
        if not session_id and not execution_id:
            session_id = DEFAULT_SESSION
        # The outcome arrives as the execution's own events (stream_end canceled, ready).
        outcomes = await self.chat.cancel(self.user, session_id=session_id, execution_id=execution_id, wait=False)
        if not outcomes:
            await self.send(_error("not_running", "nothing to cancel", session_id=session_id))

    async def on_ping(self, msg: dict) -> None:
        await self.send(json.dumps({"type": "pong"}))

    def _subscribe(self, session_id: str, after_seq: int | None) -> None:
        if old := self.subs.pop(session_id, None):
            old[0].close()
            old[1].cancel()
        sub = self.hub.subscribe(session_id, after_seq)
        assert self._tg is not None
        task = self._tg.create_task(self._forward(sub))
        self.subs[session_id] = (sub, task)

    async def _forward(self, sub: Subscription) -> None:
        while True:
            for text in await sub.next_batch():
                await self.send(text)
            if sub.cut_off:
                # The resync was its last event; the client re-subscribes with after_seq.
                if self.subs.get(sub.session_id, (None,))[0] is sub:
                    del self.subs[sub.session_id]
                return


async def chat_ws(ws: WebSocket) -> None:
    app = ws.app
    await ws.accept()
    try:
        user = app.state.auth.authenticate(ws)
    except AuthError:
        await ws.send_text(_error("unauthorized", "unauthorized"))
        await ws.close(CLOSE_UNAUTHORIZED, "unauthorized")
        return
    await ChatSocket(ws, user, app.state.chat, app.state.hub).run()


routes = [WebSocketRoute("/ws/chat", chat_ws)]
