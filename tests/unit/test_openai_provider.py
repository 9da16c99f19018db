"""The `openai` provider against a fake OpenAI-compatible server on loopback (real httpx,
real sockets, real SSE)."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_runner.protocol import ModelSettings
from agent_runner.providers import ModelError, make_provider
from agent_runner.providers.openai import OpenAIProvider
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    delta,
    error_reply,
    slow_reply,
    text_reply,
    tool_calls_reply,
)
from tests.fakes.server import free_port

KEY = "sk-test-0123456789abcdef-SECRET"
USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "read_file", "description": "read", "parameters": {"type": "object"}}}]


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def make(base: str, **kw) -> OpenAIProvider:
    opts = {k: kw.pop(k) for k in ("max_attempts", "retry_after_cap_s") if k in kw}
    settings = ModelSettings(provider="openai", model=kw.pop("model", "gpt-test"), api_key=kw.pop("api_key", KEY),
                             api_base=base, timeout_s=kw.pop("timeout_s", 15.0), **kw)
    return OpenAIProvider(settings, backoff_base_s=0.01, **opts)


def turn(provider: OpenAIProvider, messages=USER, tools=()):
    deltas: list[str] = []

    async def go():
        try:
            return await provider.turn(list(messages), list(tools), deltas.append)
        finally:
            await provider.aclose()

    return asyncio.run(go()), deltas


def failing_turn(provider: OpenAIProvider, **kw) -> tuple[str, list[str]]:
    deltas: list[str] = []

    async def go():
        try:
            await provider.turn(USER, [], deltas.append)
        finally:
            await provider.aclose()

    with pytest.raises(ModelError) as info:
        asyncio.run(go())
    message = str(info.value)
    assert KEY not in message
    return message, deltas


# -- streaming


def test_streams_text_and_sends_the_request_openai_expects(fake):
    fake.push(text_reply("Hello there, streaming world!", pieces=4))
    result, deltas = turn(make(fake.base_url, max_tokens=321, temperature=0.25), tools=TOOLS)
    assert len(deltas) >= 4 and "".join(deltas) == "Hello there, streaming world!"
    assert result.content == "Hello there, streaming world!"
    assert result.tool_calls == []
    assert result.usage == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    (req,) = fake.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.body["model"] == "gpt-test"
    assert req.body["stream"] is True
    assert req.body["stream_options"] == {"include_usage": True}
    assert req.body["max_tokens"] == 321 and req.body["temperature"] == 0.25
    assert req.body["messages"] == USER and req.body["tools"] == TOOLS


def test_base_url_with_trailing_slash_and_no_key(fake):
    fake.push(text_reply("ok"))
    result, _ = turn(make(fake.base_url + "/", api_key=""))
    assert result.content == "ok"
    (req,) = fake.requests
    assert req.path == "/v1/chat/completions"
    assert "authorization" not in req.headers


def test_server_that_ignores_include_usage(fake):
    fake.push(text_reply("no usage here", ignore_usage_option=True))
    result, _ = turn(make(fake.base_url))
    assert result.content == "no usage here" and result.usage is None


def test_finish_reason_without_done_is_complete(fake):
    fake.push(text_reply("fine", done=False))
    result, _ = turn(make(fake.base_url))
    assert result.content == "fine"


def test_server_that_ignores_stream_true_and_answers_json(fake):
    fake.push(Reply(json_body={
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me look.",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "list_dir", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }))
    result, deltas = turn(make(fake.base_url))
    assert deltas == ["Let me look."]
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [("c1", "list_dir", {})]
    assert result.usage["total_tokens"] == 5


# -- tool calls


def test_one_tool_call(fake):
    fake.push(tool_calls_reply([("call_a", "read_file", {"path": "notes.txt"})]))
    result, deltas = turn(make(fake.base_url), tools=TOOLS)
    assert deltas == []
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [("call_a", "read_file", {"path": "notes.txt"})]


def test_several_tool_calls_in_one_turn_are_assembled_by_index(fake):
    calls = [
        ("call_a", "read_file", {"path": "a.txt"}),
        ("call_b", "write_file", {"path": "b.txt", "content": "line one\nline \"two\""}),
        ("call_c", "exec", {"command": "ls -la && echo done"}),
    ]
    fake.push(tool_calls_reply(calls, text="Working on it.", pieces=4, interleave=True))
    result, deltas = turn(make(fake.base_url), tools=TOOLS)
    assert "".join(deltas) == "Working on it." and result.content == "Working on it."
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == calls


def test_tool_calls_without_index_are_told_apart_by_id(fake):
    calls = [("c1", "list_dir", {"path": "."}), ("c2", "read_file", {"path": "x"})]
    fake.push(tool_calls_reply(calls, with_index=False, interleave=False))
    result, _ = turn(make(fake.base_url))
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == calls


def test_tool_call_with_invalid_json_arguments(fake):
    fake.push(Reply(events=[
        delta(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "exec", "arguments": "{\"command\": "}}]),
        delta(finish="tool_calls"),
    ]))
    message, _ = failing_turn(make(fake.base_url))
    assert "exec" in message and "not valid JSON" in message


def test_tool_call_cut_by_max_tokens(fake):
    fake.push(Reply(events=[
        delta(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "write_file", "arguments": "{\"path\": \"a"}}]),
        delta(finish="length"),
    ]))
    message, _ = failing_turn(make(fake.base_url, max_tokens=64))
    assert "max_tokens (64)" in message and "write_file" in message


# -- HTTP errors


@pytest.mark.parametrize("status", [401, 403])
def test_bad_key_is_a_clear_error_and_never_echoes_the_key(fake, status):
    # The server echoes the key in its message: the error must not.
    fake.push(error_reply(status, f"Incorrect API key provided: {KEY}.", code="invalid_api_key"))
    message, _ = failing_turn(make(fake.base_url))
    assert f"HTTP {status}" in message and "API key" in message
    assert "KAKOCLAW_PROVIDERS_OPENAI_API_KEY" in message
    assert "[redacted]" in message
    assert len(fake.requests) == 1  # not retried


def test_unknown_model(fake):
    fake.push(error_reply(404, "The model `gpt-nope` does not exist or you do not have access to it.",
                          code="model_not_found"))
    message, _ = failing_turn(make(fake.base_url, model="gpt-nope"))
    assert "unknown model 'gpt-nope'" in message and "HTTP 404" in message
    assert len(fake.requests) == 1


def test_wrong_api_base_path(fake):
    message, _ = failing_turn(make(fake.origin + "/api"))
    assert "HTTP 404" in message and "API base" in message and "/v1" in message


def test_429_then_success_honours_retry_after(fake):
    fake.push(error_reply(429, "Rate limit reached", headers={"Retry-After": "0.3"}), text_reply("after the wait"))
    start = time.monotonic()
    result, deltas = turn(make(fake.base_url))
    assert result.content == "after the wait" and "".join(deltas) == "after the wait"
    assert len(fake.requests) == 2
    assert time.monotonic() - start >= 0.25  # waited as asked


def test_retry_after_is_capped(fake):
    fake.push(error_reply(429, "slow down", headers={"Retry-After": "3600"}), text_reply("ok"))
    start = time.monotonic()
    result, _ = turn(make(fake.base_url, retry_after_cap_s=0.2))
    assert result.content == "ok" and time.monotonic() - start < 30


def test_429_gives_up_after_a_few_attempts(fake):
    fake.push(*[error_reply(429, "Rate limit reached", headers={"retry-after-ms": "10"})] * 3)
    message, _ = failing_turn(make(fake.base_url, max_attempts=3))
    assert "rate limited" in message and "HTTP 429" in message and "3 attempts" in message
    assert len(fake.requests) == 3


def test_quota_exhausted_is_not_retried(fake):
    fake.push(error_reply(429, "You exceeded your current quota.", code="insufficient_quota"))
    message, _ = failing_turn(make(fake.base_url))
    assert "quota" in message and len(fake.requests) == 1


def test_500_then_success(fake):
    fake.push(error_reply(500, "The server had an error"), text_reply("recovered"))
    result, _ = turn(make(fake.base_url))
    assert result.content == "recovered" and len(fake.requests) == 2


def test_500_every_time(fake):
    fake.push(*[error_reply(500, "The server had an error")] * 4)
    message, _ = failing_turn(make(fake.base_url))
    assert "HTTP 500" in message and "The server had an error" in message and "4 attempts" in message


def test_400_naming_stream_options_is_retried_without_it(fake):
    def strict(body):
        if "stream_options" in body:
            return error_reply(400, "Unrecognized request argument supplied: stream_options")
        return text_reply("strict server ok")

    fake.push(strict, strict, strict)

    async def two_turns():
        provider = make(fake.base_url)
        try:
            first = await provider.turn(USER, [], lambda _: None)
            second = await provider.turn(USER, [], lambda _: None)
            return first, second
        finally:
            await provider.aclose()

    first, second = asyncio.run(two_turns())
    assert first.content == second.content == "strict server ok"
    # Learned once: the second turn does not send it again.
    assert ["stream_options" in r.body for r in fake.requests] == [True, False, False]


def test_400_asking_for_max_completion_tokens(fake):
    def strict(body):
        if "max_tokens" in body:
            return error_reply(400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                    "Use 'max_completion_tokens' instead.")
        return text_reply("ok")

    fake.push(strict, strict)
    result, _ = turn(make(fake.base_url, max_tokens=100))
    assert result.content == "ok"
    assert fake.requests[-1].body["max_completion_tokens"] == 100


def test_other_400_is_reported(fake):
    fake.push(error_reply(400, "This model's maximum context length is 8192 tokens."))
    message, _ = failing_turn(make(fake.base_url))
    assert "HTTP 400" in message and "maximum context length" in message


# -- broken streams and connections


def test_stream_cut_in_the_middle_after_text(fake):
    fake.push(text_reply("partial answer that never ends", done=False, finish=None, cut=True))
    message, deltas = failing_turn(make(fake.base_url))
    assert "".join(deltas) == "partial answer that never ends"
    assert "broke off mid-stream" in message and "not retried" in message
    assert len(fake.requests) == 1  # text reached the user: no retry, it would repeat itself


def test_stream_cut_before_any_text_is_retried(fake):
    fake.push(Reply(events=[delta(role="assistant")], done=False, cut=True), text_reply("second try"))
    result, deltas = turn(make(fake.base_url))
    assert result.content == "second try" and "".join(deltas) == "second try"
    assert len(fake.requests) == 2


def test_stream_that_ends_without_done_or_finish_reason(fake):
    fake.push(text_reply("cut short", done=False, finish=None, chunked=False))
    message, deltas = failing_turn(make(fake.base_url))
    assert "".join(deltas) == "cut short"
    assert "ended before it was complete" in message


def test_invalid_json_in_a_chunk(fake):
    fake.push(Reply(events=[delta(content="fine so far "), '{"choices": [{"delta": {"content": "oops"}', delta(finish="stop")]))
    message, deltas = failing_turn(make(fake.base_url))
    assert deltas == ["fine so far "]
    assert "malformed stream" in message and "not JSON" in message


def test_error_object_in_the_stream(fake):
    fake.push(Reply(events=[{"error": {"message": "upstream overloaded", "code": 502}}]))
    message, _ = failing_turn(make(fake.base_url))
    assert "upstream overloaded" in message


def test_connection_refused_names_the_base_url():
    port = free_port()
    base = f"http://user:pw@127.0.0.1:{port}/v1"
    start = time.monotonic()
    message, _ = failing_turn(make(base, max_attempts=2))
    assert f"http://127.0.0.1:{port}/v1" in message and "connection refused" in message
    assert "pw" not in message  # credentials in the URL are not shown
    assert time.monotonic() - start < 15


def test_read_timeout(fake):
    fake.push(Reply(events=[delta(content="late")], delay_s=5.0))
    message, deltas = failing_turn(make(fake.base_url, timeout_s=0.5))
    assert deltas == [] and "read timeout" in message and "0.5 s" in message
    assert len(fake.requests) == 1  # a silent server is not asked again


def test_configuration_errors():
    with pytest.raises(ModelError, match="http"):
        make("ftp://example.com/v1")
    with pytest.raises(ModelError, match="no model"):
        make("http://127.0.0.1:1/v1", model="")
    provider = make_provider(ModelSettings(provider="openai", model="m", api_base=""))
    assert isinstance(provider, OpenAIProvider) and provider.url == "https://api.openai.com/v1/chat/completions"
    asyncio.run(provider.aclose())


def test_cancel_closes_the_stream_promptly(fake):
    fake.push(slow_reply(200, 0.1))
    got_text = asyncio.Event()

    async def go():
        provider = make(fake.base_url)
        deltas: list[str] = []

        def on_delta(text):
            deltas.append(text)
            got_text.set()

        task = asyncio.create_task(provider.turn(USER, [], on_delta))
        await asyncio.wait_for(got_text.wait(), 10)
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        elapsed = time.monotonic() - start
        await provider.aclose()
        return deltas, elapsed

    deltas, elapsed = asyncio.run(go())
    assert deltas and elapsed < 2.0
    assert fake.disconnected.wait(10), "the server never saw the client go away"
