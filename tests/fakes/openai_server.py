"""A fake OpenAI-compatible model server: a real HTTP server on 127.0.0.1 that speaks
POST /v1/chat/completions with server-sent events, answering from a per-test script.

Each request takes the next scripted reply (a `Reply`, or a function of the request body
that returns one). Builders cover what the provider must handle: streamed text, several
tool calls in one turn (fragments interleaved, assembled by `index`), HTTP errors with
Retry-After, a connection cut mid-stream, a body that just ends, a chunk that is not JSON, a
slow stream. Every request is recorded (path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Union

from .server import LoopbackServer

DONE = "[DONE]"


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    json_body: Any = None  # non-streamed answers (errors, or a server that ignores stream=true)
    # Streamed answers: each item is a chunk dict (wrapped in the chunk envelope) or a raw
    # `data:` payload string (sent as is, e.g. "[DONE]" or broken JSON).
    events: list[Union[dict, str]] = field(default_factory=list)
    usage: dict | None = None  # sent before [DONE] when the request asks for it (include_usage)
    ignore_usage_option: bool = False  # behave like servers that never send usage
    done: bool = True  # end with data: [DONE]
    delay_s: float = 0.0  # pause before each event
    cut: bool = False  # after the events, drop the connection in the middle of a chunk
    chunked: bool = True  # False: close-delimited body (the stream "ends" by closing)


Script = Union[Reply, Callable[[dict], Reply]]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


def delta(content: str | None = None, tool_calls: list[dict] | None = None, role: str | None = None,
          finish: str | None = None) -> dict:
    d: dict = {}
    if role:
        d["role"] = role
    if content is not None:
        d["content"] = content
    if tool_calls is not None:
        d["tool_calls"] = tool_calls
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def text_reply(text: str, *, pieces: int = 4, usage: dict | None = None, finish: str | None = "stop",
               done: bool = True, delay_s: float = 0.0, **kw: Any) -> Reply:
    """Streams `text` in about `pieces` deltas."""
    size = max(1, -(-len(text) // pieces))
    events: list[dict | str] = [delta(role="assistant", content="")]
    events += [delta(content=text[i : i + size]) for i in range(0, len(text), size)]
    if finish:
        events.append(delta(finish=finish))
    if usage is None:
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    return Reply(events=events, usage=usage, done=done, delay_s=delay_s, **kw)


def tool_calls_reply(calls: list[tuple[str, str, dict]], *, text: str = "", pieces: int = 3,
                     interleave: bool = True, with_index: bool = True) -> Reply:
    """Streams tool calls [(id, name, arguments)] the way OpenAI does: a first fragment with
    id and name, then the arguments JSON in pieces. With `interleave`, the fragments of the
    calls alternate, so only `index` tells them apart."""
    events: list[dict | str] = [delta(role="assistant", content=text or None)]
    per_call: list[list[dict]] = []
    for index, (call_id, name, args) in enumerate(calls):
        raw = json.dumps(args)
        size = max(1, -(-len(raw) // pieces))
        frags = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]
        frags += [{"function": {"arguments": raw[i : i + size]}} for i in range(0, len(raw), size)]
        for frag in frags:
            if with_index:
                frag["index"] = index
        per_call.append(frags)
    if interleave:
        longest = max(len(f) for f in per_call)
        for i in range(longest):
            for frags in per_call:
                if i < len(frags):
                    events.append(delta(tool_calls=[frags[i]]))
    else:
        for frags in per_call:
            events += [delta(tool_calls=[f]) for f in frags]
    events.append(delta(finish="tool_calls"))
    return Reply(events=events, usage={"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29})


def error_reply(status: int, message: str, *, code: str | None = None, headers: dict | None = None) -> Reply:
    err: dict = {"message": message, "type": "invalid_request_error" if status < 500 else "server_error"}
    if code:
        err["code"] = code
    return Reply(status=status, headers=headers or {}, json_body={"error": err})


def slow_reply(count: int, interval_s: float, word: str = "tick") -> Reply:
    """One delta "tick<i> " every interval_s."""
    events: list[dict | str] = [delta(content=f"{word}{i} ") for i in range(count)]
    return Reply(events=events + [delta(finish="stop")], delay_s=interval_s,
                 usage={"prompt_tokens": 1, "completion_tokens": count, "total_tokens": count + 1})


class FakeOpenAI(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: deque[Script] = deque()
        self.requests: list[Request] = []
        self.disconnected = threading.Event()  # a client went away while a stream was being written
        self.lock = threading.Lock()
        self.handler_class = _Handler

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def push(self, *scripts: Script) -> "FakeOpenAI":
        with self.lock:
            self.scripts.extend(scripts)
        return self

    def next_reply(self, body: Any) -> Reply:
        with self.lock:
            script = self.scripts.popleft() if self.scripts else None
        if script is None:
            return error_reply(500, "fake server: no scripted reply left")
        return script(body) if callable(script) else script

    def wait_requests(self, n: int, timeout: float = 10.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.owner  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.fake.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"Invalid URL (POST {self.path})", "type": "invalid_request_error"}})
            return
        reply = self.fake.next_reply(body)
        if reply.status != 200 or reply.json_body is not None:
            self._json(reply.status, reply.json_body if reply.json_body is not None else {}, reply.headers)
            return
        self._stream(reply, body if isinstance(body, dict) else {})

    def _json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply: Reply, body: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        payloads = [self._payload(e, body) for e in reply.events]
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if reply.usage is not None and wants_usage and not reply.ignore_usage_option:
            payloads.append(json.dumps(self._envelope({"choices": [], "usage": reply.usage}, body)))
        if reply.done and not reply.cut:
            payloads.append(DONE)
        try:
            for payload in payloads:
                if reply.delay_s and self.fake.stopping.wait(reply.delay_s):
                    return
                self._write(f"data: {payload}\n\n".encode(), reply.chunked)
            if reply.cut:
                # Announce a chunk and send only part of it, then drop the connection.
                self.wfile.write(b"400\r\ndata: {\"choices\": [{\"ind")
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if reply.chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.fake.disconnected.set()
            self.close_connection = True

    def _write(self, data: bytes, chunked: bool) -> None:
        if chunked:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        else:
            self.wfile.write(data)
        self.wfile.flush()

    def _payload(self, event: dict | str, body: dict) -> str:
        return event if isinstance(event, str) else json.dumps(self._envelope(event, body))

    @staticmethod
    def _envelope(chunk: dict, body: dict) -> dict:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            **chunk,
        }
