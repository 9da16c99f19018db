"""`openai`: any OpenAI-compatible `/chat/completions` server (OpenAI, Ollama, vLLM, LM Studio,
OpenRouter, ...), chosen by its base URL.

One turn is one streamed request (server-sent events). Text deltas go to the caller as they
arrive; tool calls are assembled per `index`, so several calls in one turn stay apart.
Failures before any text was streamed are retried with backoff (429, 5xx, a refused or
broken connection), honouring Retry-After up to a cap; once text has reached the user a
retry would repeat it, so the turn fails instead. The API key travels only in the
Authorization header: error messages are scrubbed of it and never include headers.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..protocol import ModelSettings
from .base import ModelError, ModelTurn, ToolCall

DEFAULT_API_BASE = "https://api.openai.com/v1"
MAX_ATTEMPTS = 4  # one request and up to three retries
BACKOFF_BASE_S = 0.5  # 0.5, 1, 2 s (with jitter) between attempts
BACKOFF_MAX_S = 8.0
RETRY_AFTER_CAP_S = 20.0  # a longer Retry-After is shortened to this
CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 120.0
ERROR_BODY_LIMIT = 64 * 1024
COMPLETION_BODY_LIMIT = 16 * 1024 * 1024
EVENT_LIMIT = 8 * 1024 * 1024  # one server-sent event's data
USER_AGENT = "KakoClaw-agent-runner"


class _Retry(Exception):
    """A failure worth another attempt (if nothing has been streamed yet)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Resend(Exception):
    """The request was adapted to what the server accepts; send it again at once."""


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _TurnState:
    content: list[str] = field(default_factory=list)
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    last_index: int = 0
    usage: dict | None = None
    finish_reason: str | None = None
    done: bool = False  # [DONE] seen
    emitted: bool = False  # some text reached on_delta

    def add_tool_delta(self, delta: dict) -> None:
        index = delta.get("index")
        call_id = delta.get("id") if isinstance(delta.get("id"), str) else ""
        if not isinstance(index, int) or isinstance(index, bool):
            # Servers that omit `index`: a new id starts a call, fragments continue the last one.
            known = next((i for i, c in self.calls.items() if call_id and c.id == call_id), None)
            if known is not None:
                index = known
            elif call_id or not self.calls:
                index = max(self.calls, default=-1) + 1
            else:
                index = self.last_index
        call = self.calls.setdefault(index, _PendingCall())
        self.last_index = index
        if call_id and not call.id:
            call.id = call_id
        function = delta.get("function")
        if not isinstance(function, dict):
            return
        name = function.get("name")
        if isinstance(name, str) and name and not call.name:
            call.name = name
        args = function.get("arguments")
        if isinstance(args, str):
            call.arguments.append(args)
        elif isinstance(args, dict):
            call.arguments.append(json.dumps(args))


def _shown_base(api_base: str) -> str:
    """The base URL as it may appear in messages: no user info, query or fragment."""
    parts = urlsplit(api_base)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _parse_retry_after(headers: httpx.Headers) -> float | None:
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _clean_usage(usage: dict) -> dict:
    """Token counts only (numbers, and one level of nested counts), never a `type` field."""
    out: dict = {}
    for key, value in usage.items():
        if key == "type":
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value
        elif isinstance(value, dict):
            nested = {k: v for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if nested:
                out[key] = nested
    return out


def _reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused (is the server running, and is the API base right?)"
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


async def _read_capped(resp: httpx.Response, limit: int) -> bytes:
    buf = bytearray()
    async for chunk in resp.aiter_bytes():
        buf.extend(chunk)
        if len(buf) >= limit:
            break
    return bytes(buf[:limit])


class OpenAIProvider:
    def __init__(
        self,
        settings: ModelSettings,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base_s: float = BACKOFF_BASE_S,
        retry_after_cap_s: float = RETRY_AFTER_CAP_S,
    ) -> None:
        self.settings = settings
        self.max_attempts = max(1, max_attempts)
        self.backoff_base_s = backoff_base_s
        self.retry_after_cap_s = retry_after_cap_s
        api_base = (settings.api_base or DEFAULT_API_BASE).strip().rstrip("/")
        if urlsplit(api_base).scheme not in ("http", "https") or not urlsplit(api_base).hostname:
            raise ModelError(f"the API base must be an http(s) URL such as {DEFAULT_API_BASE}, not {_shown_base(api_base)!r}")
        if not settings.model:
            raise ModelError("no model is configured for the openai provider (KAKOCLAW_AGENTS_DEFAULTS_MODEL)")
        self.url = api_base + "/chat/completions"
        self.base = _shown_base(api_base)
        self._key = settings.api_key or ""
        self._adapted: set[str] = set()  # request fields this server refused, learned per run
        read_timeout = settings.timeout_s if settings.timeout_s and settings.timeout_s > 0 else DEFAULT_READ_TIMEOUT_S
        self.read_timeout_s = read_timeout
        headers = {"Accept": "text/event-stream", "User-Agent": USER_AGENT}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=min(CONNECT_TIMEOUT_S, read_timeout)),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- one turn

    async def turn(self, messages: list[dict], tools: list[dict], on_delta: Callable[[str], None]) -> ModelTurn:
        attempt = 0
        resends = 0
        while True:
            attempt += 1
            state = _TurnState()

            def emit(text: str, state: _TurnState = state) -> None:
                state.emitted = True
                on_delta(text)

            try:
                await self._attempt(self._body(messages, tools), state, emit)
                return self._finish(state)
            except _Resend:
                resends += 1
                attempt -= 1
                if resends > 3:
                    raise ModelError(f"the model server at {self.base} keeps refusing the request's parameters") from None
            except _Retry as exc:
                if state.emitted:
                    raise ModelError(f"{exc} (part of the reply was already streamed, so it was not retried)") from None
                if attempt >= self.max_attempts:
                    raise ModelError(f"{exc} (gave up after {attempt} attempts)") from None
                await asyncio.sleep(self._delay(attempt, exc.retry_after))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap_s)
        backoff = self.backoff_base_s * (2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
        return min(backoff, BACKOFF_MAX_S)

    def _body(self, messages: list[dict], tools: list[dict]) -> dict:
        s = self.settings
        body: dict = {"model": s.model, "messages": messages, "stream": True}
        if "stream_options" not in self._adapted:
            body["stream_options"] = {"include_usage": True}
        if s.max_tokens and s.max_tokens > 0:
            key = "max_completion_tokens" if "max_tokens" in self._adapted else "max_tokens"
            body[key] = s.max_tokens
        if s.temperature is not None and "temperature" not in self._adapted:
            body["temperature"] = s.temperature
        if tools:
            body["tools"] = tools
        return body

    async def _attempt(self, body: dict, state: _TurnState, emit: Callable[[str], None]) -> None:
        try:
            async with self._client.stream("POST", self.url, json=body) as resp:
                if not 200 <= resp.status_code < 300:
                    self._raise_for_status(resp, await _read_capped(resp, ERROR_BODY_LIMIT), body)
                ctype = resp.headers.get("content-type", "").lower()
                if "text/event-stream" not in ctype and "json" in ctype:
                    # A server that ignored stream=true answered with one JSON completion.
                    self._apply_completion(await _read_capped(resp, COMPLETION_BODY_LIMIT), state, emit)
                    return
                async for data in _sse_data(resp.aiter_lines()):
                    if data.strip() == "[DONE]":
                        state.done = True
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        raise ModelError(
                            f"malformed stream from the model server at {self.base}: an event is not JSON: "
                            f"{self._redact(data[:120])!r}"
                        ) from None
                    self._apply_chunk(chunk, state, emit)
        except httpx.ConnectTimeout:
            raise _Retry(f"timed out connecting to the model server at {self.base}") from None
        except httpx.ConnectError as exc:
            raise _Retry(f"cannot connect to the model server at {self.base}: {self._redact(_reason(exc))}") from None
        except httpx.ReadTimeout:
            raise ModelError(
                f"the model server at {self.base} sent nothing for {self.read_timeout_s:g} s (read timeout)"
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _Retry(
                f"the connection to the model server at {self.base} broke off mid-stream: {self._redact(_reason(exc))}"
            ) from None
        except httpx.TimeoutException:
            raise ModelError(f"timed out talking to the model server at {self.base}") from None
        except httpx.HTTPError as exc:
            raise ModelError(f"request to the model server at {self.base} failed: {self._redact(_reason(exc))}") from None
        if not state.done and state.finish_reason is None:
            raise _Retry(
                f"the stream from the model server at {self.base} ended before it was complete "
                "(no finish_reason and no [DONE])"
            )

    # -- reading the answer

    def _apply_chunk(self, chunk: object, state: _TurnState, emit: Callable[[str], None]) -> None:
        if not isinstance(chunk, dict):
            raise ModelError(f"malformed stream from the model server at {self.base}: an event is not a JSON object")
        if chunk.get("error"):
            message, _ = self._error_detail(chunk["error"])
            raise ModelError(f"the model server at {self.base} reported an error mid-stream: {message}")
        if isinstance(chunk.get("usage"), dict):
            state.usage = _clean_usage(chunk["usage"])
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._apply_message(delta, state, emit)
            if choice.get("finish_reason"):
                state.finish_reason = str(choice["finish_reason"])

    def _apply_message(self, message: dict, state: _TurnState, emit: Callable[[str], None]) -> None:
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        if isinstance(content, str) and content:
            state.content.append(content)
            emit(content)
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            for delta in tool_calls:
                if isinstance(delta, dict):
                    state.add_tool_delta(delta)
        if isinstance(message.get("function_call"), dict):  # the older single-function form
            state.add_tool_delta({"index": 0, "function": message["function_call"]})

    def _apply_completion(self, raw: bytes, state: _TurnState, emit: Callable[[str], None]) -> None:
        try:
            obj = json.loads(raw)
        except ValueError:
            raise ModelError(f"the model server at {self.base} answered with a body that is not JSON") from None
        if not isinstance(obj, dict):
            raise ModelError(f"the model server at {self.base} answered with unexpected JSON")
        if obj.get("error"):
            message, _ = self._error_detail(obj["error"])
            raise ModelError(f"the model server at {self.base} reported an error: {message}")
        if isinstance(obj.get("usage"), dict):
            state.usage = _clean_usage(obj["usage"])
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ModelError(f"the model server at {self.base} answered without any choices")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        calls = message.get("tool_calls")
        if isinstance(calls, list):  # complete calls: number them in order
            message = {**message, "tool_calls": [{**c, "index": i} for i, c in enumerate(calls) if isinstance(c, dict)]}
        self._apply_message(message, state, emit)
        state.finish_reason = str(choice.get("finish_reason") or "stop")
        state.done = True

    def _finish(self, state: _TurnState) -> ModelTurn:
        calls: list[ToolCall] = []
        for index in sorted(state.calls):
            pending = state.calls[index]
            if not pending.name:
                raise ModelError(f"the model sent a tool call (index {index}) without a function name")
            raw = "".join(pending.arguments).strip()
            try:
                args = json.loads(raw) if raw else {}
            except ValueError:
                if state.finish_reason == "length":
                    raise ModelError(
                        f"the reply reached max_tokens ({self.settings.max_tokens}) in the middle of a call to "
                        f"{pending.name}; raise the max tokens setting"
                    ) from None
                raise ModelError(
                    f"the model called {pending.name} with arguments that are not valid JSON: {raw[:200]!r}"
                ) from None
            if not isinstance(args, dict):
                raise ModelError(f"the model called {pending.name} with arguments that are not a JSON object: {raw[:200]!r}")
            calls.append(ToolCall(id=pending.id or f"call_{uuid.uuid4().hex[:24]}", name=pending.name, arguments=args))
        return ModelTurn(content="".join(state.content), tool_calls=calls, usage=state.usage)

    # -- errors

    def _redact(self, text: str) -> str:
        if self._key and len(self._key) >= 4:
            text = text.replace(self._key, "[redacted]")
        return text

    def _error_detail(self, err: object) -> tuple[str, str]:
        """(message, code) from an error object or body, scrubbed of the key and shortened."""
        message: object = None
        code: object = None
        if isinstance(err, (bytes, bytearray)):
            text = bytes(err).decode("utf-8", "replace")
            try:
                err = json.loads(text)
            except ValueError:
                err = text
        if isinstance(err, dict):
            inner = err.get("error", err)
            if isinstance(inner, dict):
                message = inner.get("message") or inner.get("msg") or inner.get("detail")
                code = inner.get("code") or inner.get("type")
            elif isinstance(inner, str):
                message = inner
            message = message or err.get("detail") or err.get("message")
            if not message:
                message = json.dumps(err)[:300]
        elif err is not None:
            message = err
        text = " ".join(str(message or "").split())
        if len(text) > 300:
            text = text[:300] + "..."
        return self._redact(text), self._redact(str(code or ""))

    def _raise_for_status(self, resp: httpx.Response, raw: bytes, body: dict) -> None:
        status = resp.status_code
        message, code = self._error_detail(raw)
        said = f": {message}" if message else ""
        model = self.settings.model
        key_var = f"KAKOCLAW_PROVIDERS_{self.settings.provider.upper()}_API_KEY"
        if status == 401:
            what = "no API key is configured" if not self._key else "the API key was rejected"
            raise ModelError(f"the model server at {self.base} refused the request (HTTP 401): {what}; check {key_var}{said}")
        if status == 403:
            raise ModelError(
                f"the model server at {self.base} denied access (HTTP 403): the API key is not allowed to use "
                f"model {model!r}, or is not valid; check {key_var}{said}"
            )
        if status == 404:
            if "model" in message.lower() or "model" in code.lower():
                raise ModelError(f"unknown model {model!r} at {self.base} (HTTP 404){said}")
            raise ModelError(
                f"HTTP 404 from {_shown_base(self.url)}: the server has no chat completions endpoint there "
                f"(check the API base; it usually ends in /v1) or does not know model {model!r}{said}"
            )
        if status == 400 and self._adapt(body, message):
            raise _Resend()
        if status == 429:
            if "quota" in code.lower() or "insufficient_quota" in message.lower():
                raise ModelError(f"the model server at {self.base} reports the account's quota is used up (HTTP 429){said}")
            raise _Retry(f"rate limited by the model server at {self.base} (HTTP 429){said}", _parse_retry_after(resp.headers))
        if status == 408 or status >= 500:
            raise _Retry(f"the model server at {self.base} failed (HTTP {status}){said}", _parse_retry_after(resp.headers))
        if 300 <= status < 400:
            target = _shown_base(resp.headers.get("location", "")) if resp.headers.get("location") else "elsewhere"
            raise ModelError(f"the model server at {self.base} redirects (HTTP {status}) to {target}; set the API base to the final address")
        raise ModelError(f"the model server at {self.base} rejected the request (HTTP {status}){said}")

    def _adapt(self, body: dict, message: str) -> bool:
        """Drop or rename a request field that this server says it does not accept."""
        low = message.lower()
        if "stream_options" in body and "stream_options" in low:
            self._adapted.add("stream_options")
            return True
        if "max_tokens" in body and "max_completion_tokens" in low:
            self._adapted.add("max_tokens")
            return True
        if "temperature" in body and "temperature" in low and any(
            w in low for w in ("unsupported", "not support", "only the default", "does not support")
        ):
            self._adapted.add("temperature")
            return True
        return False


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` of each server-sent event. Lenient with servers that put one `data:` line
    per event without the blank line between events."""
    data: list[str] = []
    size = 0
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data, size = [], 0
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name != "data":
            continue
        if data and _is_complete_json(data):
            yield "\n".join(data)
            data, size = [], 0
        data.append(value)
        size += len(value)
        if size > EVENT_LIMIT:
            raise ModelError(f"malformed stream: one event is larger than {EVENT_LIMIT} bytes")
    if data:
        yield "\n".join(data)


def _is_complete_json(data: list[str]) -> bool:
    text = "\n".join(data).strip()
    if text == "[DONE]":
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
