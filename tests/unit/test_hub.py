import asyncio
import json

from supervisor.hub import Hub


def frames(sub):
    return [json.loads(t) for t in sub.ready(10_000)]


def test_after_seq_replays_exactly_the_missed_events_then_live():
    hub = Hub()
    hub.begin("s", "e1")
    seqs = [hub.publish("s", "e1", {"type": "tool_output", "data": str(i)}) for i in range(10)]
    sub = hub.subscribe("s", after_seq=seqs[4])
    hub.publish("s", "e1", {"type": "tool_output", "data": "live"})
    got = frames(sub)
    assert [e["data"] for e in got] == ["5", "6", "7", "8", "9", "live"]
    assert [e["seq"] for e in got] == list(range(seqs[5], seqs[5] + 6))
    assert all({"seq", "session_id", "execution_id", "ts"} <= e.keys() for e in got)
    assert frames(sub) == []


def test_consecutive_deltas_are_coalesced_into_one_valid_stream_event():
    hub = Hub()
    hub.begin("s", "e")
    first = hub.publish("s", "e", {"type": "stream", "content": "a"})
    hub.publish("s", "e", {"type": "stream", "content": "b"})
    hub.publish("s", "e", {"type": "tool_call", "name": "x"})
    last = hub.publish("s", "e", {"type": "stream", "content": "c"})
    got = frames(hub.subscribe("s", after_seq=first - 1))
    assert [(e["type"], e.get("content")) for e in got] == [("stream", "ab"), ("tool_call", None), ("stream", "c")]
    assert got[0]["seq_first"] == first and got[0]["seq"] == first + 1 and got[-1]["seq"] == last


def test_subscribe_without_after_seq_replays_the_running_execution():
    hub = Hub()
    hub.begin("s", "old")
    hub.publish("s", "old", {"type": "stream", "content": "old"})
    hub.end("s", "old")
    hub.begin("s", "new")
    hub.publish("s", "new", {"type": "stream_start"})
    hub.publish("s", "new", {"type": "ready"})
    assert [e["type"] for e in frames(hub.subscribe("s"))] == ["stream_start", "ready"]


def test_events_no_longer_kept_mean_resync():
    hub = Hub(max_events=5)
    hub.begin("s", "e")
    first = hub.publish("s", "e", {"type": "x"})
    for _ in range(20):
        hub.publish("s", "e", {"type": "x"})
    assert [e["type"] for e in frames(hub.subscribe("s", after_seq=first))] == ["resync"]
    assert [e["type"] for e in frames(hub.subscribe("s", after_seq=first + 10**9))] == ["resync"]


def test_a_subscriber_that_falls_behind_is_cut_off_and_others_are_not():
    async def body():
        hub = Hub(queue_size=8)
        hub.begin("s", "e")
        slow = hub.subscribe("s")
        fast = hub.subscribe("s")
        for i in range(20):
            hub.publish("s", "e", {"type": "x", "i": i})
            assert len(await fast.next_batch()) == 1  # the fast one keeps up
        assert [e["type"] for e in frames(slow)] == ["resync"]
        assert slow.cut_off and not fast.cut_off
        assert hub.subscriber_count() == 1

    asyncio.run(body())


def test_next_batch_waits_for_new_events():
    async def body():
        hub = Hub()
        hub.begin("s", "e")
        sub = hub.subscribe("s")
        waiter = asyncio.ensure_future(sub.next_batch())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        hub.publish("s", "e", {"type": "ready"})
        return [json.loads(t)["type"] for t in await asyncio.wait_for(waiter, 1)]

    assert asyncio.run(body()) == ["ready"]
