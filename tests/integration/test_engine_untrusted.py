"""A runner that prints garbage, crashes or hangs ends in a clear state; the engine stays healthy."""

from __future__ import annotations

import pytest

from tests.engine_helpers import EVIL_RUNNER, request, run, settings_for, with_engine

CASES = {
    # mode: (state, text the error or error events must contain)
    "nonjson": ("completed", "not JSON"),
    "badutf8": ("completed", "not UTF-8"),
    "bigline": ("completed", "longer than 1048576 bytes"),
    "flood": ("completed", "not JSON"),
    "crash": ("failed", "exited with status 3"),
    "segv": ("failed", "SIGSEGV"),
    "silent": ("failed", "without a final message"),
    "closeout": ("failed", "closed its output"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_untrusted_runner(data_dir, mode, case):
    state, reason = CASES[case]

    async def body(engine, hub):
        from tests.engine_helpers import collect
        import asyncio

        events_task = asyncio.create_task(collect(hub, "s"))
        ex = engine.submit(request("s", case))
        await ex.done.wait()
        events = await events_task
        # the engine still works: a normal execution afterwards completes
        engine.settings.runner_args = "-m agent_runner"
        after = engine.submit(request("s2", "hello"))
        await after.done.wait()
        return ex, events, after

    settings = settings_for(data_dir, mode, runner_args=EVIL_RUNNER, runner_output_bytes=200 * 1024 * 1024)
    ex, events, after = run(with_engine(settings, body))
    assert ex.state.value == state, ex.record()
    errors = " | ".join([ex.error or ""] + [e["message"] for e in events if e["type"] == "error"])
    assert reason in errors
    # no fragment of a bad or over-long line is ever forwarded as if whole
    for e in events:
        if e["type"] == "stream":
            assert e["content"] in ("still here", "after", "after big", "closing")
    assert events[-1]["type"] == "ready"
    assert after.state.value == "completed"


def test_output_limit_ends_the_execution(data_dir, mode):
    async def body(engine, hub):
        ex = engine.submit(request("s", "/flood 200000"))
        await ex.done.wait()
        return ex

    ex = run(with_engine(settings_for(data_dir, mode, runner_output_bytes=256 * 1024), body))
    assert ex.state.value == "failed"
    assert "output limit of 262144 bytes exceeded" in ex.error
