"""The agent loop end to end: a real `python -m agent_runner` subprocess, fed a job spec on
stdin, talking to the fake OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from agent_runner.protocol import Limits
from tests.fakes.openai_server import FakeOpenAI, error_reply, slow_reply, text_reply, tool_calls_reply
from tests.fakes.runner import LiveRunner, make_spec, run_runner

KEY = "sk-loop-test-7f3a9c1e5b2d4086-SECRET"
EXIT_TERMINATED = 128 + signal.SIGTERM


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


def openai_spec(ws: Path, fake: FakeOpenAI, content: str = "hello", **kw):
    return make_spec(ws, content, provider="openai", model="gpt-test", api_base=fake.base_url, api_key=KEY, **kw)


def assert_no_key(result) -> None:
    assert KEY.encode() not in result.stdout
    assert KEY not in result.stderr


def test_offline_model_streams_and_answers(ws):
    result = run_runner(make_spec(ws, "ping"))
    assert result.returncode == 0, result.stderr
    assert len(result.of("delta")) >= 2
    (message,) = result.of("message")
    assert "ping" in message["content"] and result.text == message["content"]


def test_openai_text_turn(fake, ws):
    fake.push(text_reply("Hi! How can I help?", pieces=5))
    result = run_runner(openai_spec(ws, fake, max_tokens=77, temperature=0.1))
    assert result.returncode == 0, result.stderr
    assert [e["type"] for e in result.events] == ["delta"] * 5 + ["usage", "message"]
    assert result.text == "Hi! How can I help?" == result.of("message")[0]["content"]
    assert result.of("usage")[0]["total_tokens"] == 18
    body = fake.requests[0].body
    assert body["max_tokens"] == 77 and body["temperature"] == 0.1 and body["stream"] is True
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert_no_key(result)


def test_several_tool_calls_in_one_turn_then_the_answer(fake, ws):
    fake.push(
        tool_calls_reply([
            ("call_w", "write_file", {"path": "plan.md", "content": "# Plan\n- step one\n"}),
            ("call_l", "list_dir", {"path": "."}),
        ], text="I'll write the plan, then look around."),
        text_reply("Done: plan.md is written."),
    )
    result = run_runner(openai_spec(ws, fake, "write a plan"))
    assert result.returncode == 0, result.stderr
    assert (ws / "plan.md").read_text() == "# Plan\n- step one\n"

    calls = result.of("tool_call")
    assert [(c["id"], c["name"]) for c in calls] == [("call_w", "write_file"), ("call_l", "list_dir")]
    assert calls[0]["arguments"] == {"path": "plan.md", "content": "# Plan\n- step one\n"}
    results = result.of("tool_result")
    assert [(r["id"], r["status"]) for r in results] == [("call_w", "ok"), ("call_l", "ok")]
    assert "plan.md" in results[1]["result"]
    assert result.of("message")[0]["content"] == "Done: plan.md is written."

    # The model receives the enabled tools' schemas ...
    first, second = fake.requests
    names = [t["function"]["name"] for t in first.body["tools"]]
    assert names == ["exec", "read_file", "write_file", "edit_file", "append_file", "list_dir", "web_fetch"]
    # ... and, on the next turn, its own calls and their results.
    history = second.body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool"]
    assistant = history[1]
    assert assistant["content"] == "I'll write the plan, then look around."
    assert [(c["id"], c["function"]["name"]) for c in assistant["tool_calls"]] == [
        ("call_w", "write_file"), ("call_l", "list_dir")]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"])["path"] == "plan.md"
    assert [(m["tool_call_id"], m["content"]) for m in history[2:]] == [
        ("call_w", results[0]["result"]), ("call_l", results[1]["result"])]


def test_earlier_tool_calls_in_the_history_reach_the_model(fake, ws):
    history = [
        {"role": "user", "content": "what is in the folder?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "old_1", "type": "function", "function": {"name": "list_dir", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "old_1", "content": ".: 1 entry\nplan.md  (20 B)"},
        {"role": "assistant", "content": "There is plan.md."},
        {"role": "user", "content": "thanks"},
    ]
    fake.push(text_reply("You're welcome."))
    result = run_runner(openai_spec(ws, fake, messages=history))
    assert result.returncode == 0, result.stderr
    assert fake.requests[0].body["messages"] == history


def test_only_enabled_tools_are_offered_and_callable(fake, ws):
    fake.push(tool_calls_reply([("c1", "exec", {"command": "echo hi"})]), text_reply("ok"))
    result = run_runner(openai_spec(ws, fake, tools=["read_file"]))
    assert result.returncode == 0, result.stderr
    assert [t["function"]["name"] for t in fake.requests[0].body["tools"]] == ["read_file"]
    (res,) = result.of("tool_result")
    assert res["status"] == "error" and "unknown or disabled tool 'exec'" in res["result"]
    assert result.of("tool_output") == []


def test_max_tool_rounds(fake, ws):
    for i in range(3):
        fake.push(tool_calls_reply([(f"c{i}", "list_dir", {})]))
    result = run_runner(openai_spec(ws, fake, max_tool_rounds=2))
    assert result.returncode == 1
    assert "stopped after 2 tool rounds" in result.of("error")[0]["message"]
    assert len(fake.requests) == 3 and len(result.of("tool_result")) == 2


def test_bad_key_fails_the_execution_without_echoing_it(fake, ws):
    fake.push(error_reply(401, f"Incorrect API key provided: {KEY}", code="invalid_api_key"))
    result = run_runner(openai_spec(ws, fake))
    assert result.returncode == 1
    (error,) = result.of("error")
    assert "HTTP 401" in error["message"] and "API key" in error["message"]
    assert result.of("message") == []
    assert_no_key(result)


def test_rate_limit_then_success(fake, ws):
    fake.push(error_reply(429, "Rate limit reached", headers={"Retry-After": "0"}), text_reply("made it"))
    result = run_runner(openai_spec(ws, fake))
    assert result.returncode == 0, result.stderr
    assert result.of("message")[0]["content"] == "made it" and result.text == "made it"
    assert len(fake.requests) == 2


def test_stream_cut_keeps_the_partial_text_and_fails(fake, ws):
    fake.push(text_reply("the first half of a reply", done=False, finish=None, cut=True))
    result = run_runner(openai_spec(ws, fake))
    assert result.returncode == 1
    assert result.text == "the first half of a reply"
    assert "broke off mid-stream" in result.of("error")[0]["message"]
    assert result.of("message") == []


def test_tools_never_see_api_keys(fake, ws):
    fake.push(tool_calls_reply([("c1", "exec", {"command": "env; echo END"})]), text_reply("checked"))
    env = {"OPENAI_API_KEY": "sk-env-should-not-leak", "SOME_SERVICE_TOKEN": "tok-should-not-leak",
           "KAKOCLAW_PROVIDERS_OPENAI_API_KEY": "sk-env2-should-not-leak", "VISIBLE_VAR": "yes"}
    result = run_runner(openai_spec(ws, fake), env=env)
    assert result.returncode == 0, result.stderr
    (res,) = result.of("tool_result")
    assert "VISIBLE_VAR=yes" in res["result"] and "END" in res["result"]
    assert "should-not-leak" not in res["result"]
    assert KEY not in res["result"]  # the spec's key is not in the runner's environment either
    assert "".join(e["data"] for e in result.of("tool_output")).count("should-not-leak") == 0


def test_sigterm_while_the_model_streams(fake, ws):
    fake.push(slow_reply(300, 0.1))
    runner = LiveRunner.start(openai_spec(ws, fake))
    try:
        runner.wait_for(lambda events: sum(e["type"] == "delta" for e in events) >= 3)
        start = time.monotonic()
        runner.proc.send_signal(signal.SIGTERM)
        rc = runner.wait_exit(timeout=15)
        elapsed = time.monotonic() - start
    finally:
        runner.kill()
    assert rc == EXIT_TERMINATED, runner.stderr()
    assert elapsed < 5, f"runner took {elapsed:.2f} s to stop"  # about 0.1 s here; generous for loaded CI
    deltas = [e for e in runner.events if e["type"] == "delta"]
    assert len(deltas) >= 3 and deltas[0]["text"] == "tick0 "
    assert not [e for e in runner.events if e["type"] == "message"]
    assert fake.disconnected.wait(10), "the stream to the model server was left open"


def test_sigterm_while_a_tool_runs(fake, ws):
    fake.push(tool_calls_reply([("c1", "exec", {"command": "echo $$ > shell.pid; echo started; sleep 60"})]))
    runner = LiveRunner.start(openai_spec(ws, fake))
    try:
        runner.wait_for(lambda events: any(e["type"] == "tool_output" and "started" in e["data"] for e in events))
        start = time.monotonic()
        runner.proc.send_signal(signal.SIGTERM)
        rc = runner.wait_exit(timeout=15)
        elapsed = time.monotonic() - start
    finally:
        runner.kill()
    assert rc == EXIT_TERMINATED
    assert elapsed < 5, f"runner took {elapsed:.2f} s to stop"
    shell = int((ws / "shell.pid").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{shell}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{shell}"), "the command did not get SIGTERM"


def test_runner_limits_reach_the_exec_tool(fake, ws):
    fake.push(tool_calls_reply([("c1", "exec", {"command": "sleep 30"})]), text_reply("gave up"))
    result = run_runner(openai_spec(ws, fake, limits=Limits(exec_timeout_s=0.5)))
    assert result.returncode == 0, result.stderr
    assert "timed out after 0.5 s" in result.of("tool_result")[0]["result"]
