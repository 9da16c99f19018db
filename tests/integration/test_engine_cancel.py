"""Cancel leaves nothing behind, whatever the tool does: checked on the whole process table."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.engine_helpers import request, run, settings_for, survivors, wait_for, with_engine

GRACE = 1.0

ADVERSARIES = {
    # ignores SIGTERM
    "ignores_sigterm": "trap '' TERM; sleep {tok}",
    # leaves the session and double-forks, then keeps running
    "setsid_double_fork": "setsid sh -c '(trap \"\" TERM; sleep {tok} &) ; trap \"\" TERM; sleep {tok}' & sleep {tok}",
    # forks children in a loop
    "fork_loop": "trap '' TERM; while true; do (trap '' TERM; sleep {tok}) & sleep 0.02; done",
    # clears its environment, leaves the session, escapes its parent
    "env_cleared_escape": "env -i setsid sh -c '(trap \"\" TERM; exec sleep {tok}) &' ; trap '' TERM; sleep {tok}",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIES))
def test_adversary_leaves_zero_processes(data_dir, mode, name):
    token = f"{1000 + uuid.uuid4().int % 10**6 / 1000:.3f}"  # a unique sleep length to find stragglers by
    command = ADVERSARIES[name].format(tok=token)

    async def body(engine, hub):
        ex = engine.submit(request("s", f"/shell {command}"))
        await wait_for(lambda: survivors(f"sleep {token}"))  # the tool is really running
        await asyncio.sleep(0.5)  # let it fork its way around
        outcome = await engine.cancel(ex.id, grace=GRACE)
        return ex, outcome

    ex, outcome = run(with_engine(settings_for(data_dir, mode), body))
    assert survivors(f"sleep {token}") == []
    assert outcome.state == "killed", ex.record()
    assert outcome.signal == "SIGKILL"
    # close to the grace: never before it, not long after it
    assert GRACE * 1000 <= outcome.latency_ms < GRACE * 1000 + 2000
    assert ex.reply.content == "" or isinstance(ex.reply.content, str)
    assert ex.error == "Execution canceled by user"


def test_cooperative_runner_is_canceled_far_below_the_grace(data_dir, mode):
    async def body(engine, hub):
        ex = engine.submit(request("s", "/sleep 30"))
        await wait_for(lambda: ex.reply.text)  # streaming
        return ex, await engine.cancel(ex.id, grace=3.0)

    ex, outcome = run(with_engine(settings_for(data_dir, mode), body))
    assert outcome.state == "canceled"
    assert outcome.signal == "SIGTERM"
    assert outcome.latency_ms < 1500  # the grace is 3000
    assert ex.reply.content.startswith("tick 1")  # the partial reply is kept


def test_force_cancel_kills_at_once(data_dir, mode):
    async def body(engine, hub):
        ex = engine.submit(request("s", "/sleep 30"))
        await wait_for(lambda: ex.reply.text)
        return await engine.cancel(ex.id, grace=10, force=True)

    outcome = run(with_engine(settings_for(data_dir, mode), body))
    assert outcome.state == "killed"
    assert outcome.latency_ms < 5000


def test_cancel_while_queued_never_starts_a_process(data_dir, mode):
    async def body(engine, hub):
        first = engine.submit(request("s1", "/sleep 30"))
        queued = engine.submit(request("s2", "/sleep 30"))
        assert queued.state.value == "queued" and engine.queue_position(queued) == 1
        outcome = await engine.cancel(queued.id)
        assert queued.pid is None
        await engine.cancel(first.id)
        return outcome

    outcome = run(with_engine(settings_for(data_dir, mode, max_concurrent=1), body))
    assert outcome.state == "canceled"


def test_canceled_run_ends_with_partial_stream_end(data_dir, mode):
    from tests.engine_helpers import collect

    async def body(engine, hub):
        ex = engine.submit(request("s", "/sleep 30"))
        events_task = asyncio.create_task(collect(hub, "s"))
        await wait_for(lambda: ex.reply.text)
        await engine.cancel(ex.id)
        return await events_task

    events = run(with_engine(settings_for(data_dir, mode), body))
    end = [e for e in events if e["type"] == "stream_end"][0]
    assert end["canceled"] is True and end["error"] == "Execution canceled by user"
    assert end["content"].startswith("tick 1")
    assert events[-1]["type"] == "ready"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
