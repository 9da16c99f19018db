import asyncio

import pytest

from supervisor.engine.admission import Admission, QueueFull


def test_priority_then_fifo_and_queue_bound():
    async def body():
        adm = Admission(max_running=1, max_per_user=5, max_queue=3)
        assert adm.enqueue("a", "u").done()
        b = adm.enqueue("b", "u")
        c = adm.enqueue("c", "u", priority=-1)  # more urgent
        d = adm.enqueue("d", "u")
        assert adm.queued() == ["c", "b", "d"]
        with pytest.raises(QueueFull):
            adm.enqueue("e", "u")
        adm.release("a")
        assert c.done() and not b.done()
        adm.withdraw("b")
        adm.release("c")
        assert d.done()

    asyncio.run(body())
