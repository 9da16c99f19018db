"""Each limit ends an execution with its reason; admission is FIFO within global and per-user limits."""

from __future__ import annotations

import asyncio

from tests.engine_helpers import request, run, settings_for, wait_for, with_engine


def test_wall_clock_limit_times_out(data_dir, mode):
    async def body(engine, hub):
        ex = engine.submit(request("s", "/sleep 30"))
        await ex.done.wait()
        return ex

    ex = run(with_engine(settings_for(data_dir, mode, runner_wall_time="1s"), body))
    assert ex.state.value == "timed_out"
    assert ex.error == "wall-clock limit of 1 s reached"
    assert ex.signal == "SIGTERM"


def test_memory_limit_ends_the_execution(data_dir, mode):
    grow = "/shell python3 -c \"import time; b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)\""

    async def body(engine, hub):
        ex = engine.submit(request("s", grow))
        await ex.done.wait()
        return ex

    ex = run(with_engine(settings_for(data_dir, mode, runner_memory="200M"), body))
    assert ex.state.value == "failed", ex.record()
    assert ex.error.startswith("memory limit of 209715200 bytes exceeded")


def test_process_limit_ends_the_execution(data_dir, mode):
    async def body(engine, hub):
        ex = engine.submit(request("s", "/shell for i in 1 2 3 4 5 6 7 8 9 10; do sleep 60 & done; wait"))
        await ex.done.wait()
        return ex

    ex = run(with_engine(settings_for(data_dir, mode, runner_max_processes=5), body))
    assert ex.state.value == "failed", ex.record()
    assert ex.error.startswith("process limit of 5 exceeded")


def test_global_and_per_user_limits_with_fifo_queue(data_dir, mode):
    async def body(engine, hub):
        a1 = engine.submit(request("a1", "/sleep 30", user="alice"))
        a2 = engine.submit(request("a2", "/sleep 30", user="alice"))
        b1 = engine.submit(request("b1", "/sleep 30", user="bob"))
        b2 = engine.submit(request("b2", "/sleep 30", user="bob"))
        c1 = engine.submit(request("c1", "/sleep 30", user="carol"))
        await wait_for(lambda: a1.state.value == "running" and b1.state.value == "running")
        # alice is at her own limit (1) and the global limit (2) is full: the rest wait in order
        assert [x.state.value for x in (a2, b2, c1)] == ["queued"] * 3
        assert [engine.queue_position(x) for x in (a2, b2, c1)] == [1, 2, 3]
        await engine.cancel(a1.id, grace=0.5)
        # a slot is free: the head of the queue (alice's second) starts, not bob's or carol's
        await wait_for(lambda: a2.state.value == "running")
        assert b2.state.value == "queued" and c1.state.value == "queued"
        await engine.cancel(b1.id, grace=0.5)
        # bob's second goes next: first in line, and bob is under his limit again
        await wait_for(lambda: b2.state.value == "running")
        assert engine.queue_position(c1) == 1
        for ex in (a2, b2, c1):
            await engine.cancel(ex.id, grace=0.5)
        return [x.state.value for x in (a1, a2, b1, b2, c1)]

    states = run(with_engine(settings_for(data_dir, mode, max_concurrent=2, max_concurrent_per_user=1), body))
    assert states[:4] == ["canceled"] * 4 and states[4] == "canceled"


def test_queue_skips_a_user_at_their_limit(data_dir, mode):
    async def body(engine, hub):
        a1 = engine.submit(request("a1", "/sleep 30", user="alice"))
        a2 = engine.submit(request("a2", "/sleep 30", user="alice"))
        b1 = engine.submit(request("b1", "/sleep 30", user="bob"))
        await wait_for(lambda: b1.state.value == "running")  # not held up behind alice's second
        assert a2.state.value == "queued"
        for ex in (a1, a2, b1):
            await engine.cancel(ex.id, grace=0.5)

    run(with_engine(settings_for(data_dir, mode, max_concurrent=3, max_concurrent_per_user=1), body))
