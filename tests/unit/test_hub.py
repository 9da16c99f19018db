import asyncio
import json

from supervisor.hub import Hub


def drain(sub):
    out = []
    while not sub.queue.empty():
        out.append(json.loads(sub.queue.get_nowait()))
    return out


def test_after_seq_replays_exactly_the_missed_events_then_live():
    async def body():
        hub = Hub()
        hub.begin("s", "e1")
        seqs = [hub.publish("s", "e1", {"type": "stream", "content": str(i)}) for i in range(10)]
        sub = hub.subscribe("s", after_seq=seqs[4])
        hub.publish("s", "e1", {"type": "stream", "content": "live"})
        got = drain(sub)
        assert [e["content"] for e in got] == ["5", "6", "7", "8", "9", "live"]
        assert all({"seq", "session_id", "execution_id", "ts"} <= e.keys() for e in got)

    asyncio.run(body())


def test_subscribe_without_after_seq_replays_the_running_execution():
    async def body():
        hub = Hub()
        hub.begin("s", "old")
        hub.publish("s", "old", {"type": "stream", "content": "old"})
        hub.end("s", "old")
        hub.begin("s", "new")
        hub.publish("s", "new", {"type": "stream_start"})
        hub.publish("s", "new", {"type": "stream", "content": "a"})
        got = drain(hub.subscribe("s"))
        assert [e["type"] for e in got] == ["stream_start", "stream"]

    asyncio.run(body())


def test_events_no_longer_kept_mean_resync():
    async def body():
        hub = Hub(max_events=5)
        hub.begin("s", "e")
        first = hub.publish("s", "e", {"type": "stream", "content": "0"})
        for i in range(20):
            hub.publish("s", "e", {"type": "stream", "content": str(i)})
        assert [e["type"] for e in drain(hub.subscribe("s", after_seq=first))] == ["resync"]
        assert [e["type"] for e in drain(hub.subscribe("s", after_seq=first + 10**9))] == ["resync"]

    asyncio.run(body())


def test_a_subscriber_that_falls_behind_is_cut_off_and_others_are_not():
    async def body():
        hub = Hub(queue_size=8)
        hub.begin("s", "e")
        slow = hub.subscribe("s")
        fast = hub.subscribe("s")
        for i in range(20):
            hub.publish("s", "e", {"type": "stream", "content": str(i)})
            await fast.get()  # the fast one keeps up
        slow_events = drain(slow)
        assert [e["type"] for e in slow_events] == ["resync"]
        assert slow.cut_off and not fast.cut_off
        assert hub.subscriber_count() == 1

    asyncio.run(body())
