"""A supervisor process for lifecycle tests: starts N executions whose tools sleep for a
unique time, prints "ready", and on SIGTERM shuts down and prints each final state."""

import asyncio
import signal
import sys

from supervisor.engine import Engine, ExecutionRequest
from supervisor.hub import Hub
from tests.engine_helpers import settings_for


async def main(data_dir: str, mode: str, token: str, count: int) -> None:
    from pathlib import Path

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Engine(settings_for(Path(data_dir), mode), Hub()) as engine:
        exs = [
            engine.submit(ExecutionRequest(f"s{i}", "alice", [{"role": "user", "content": f"/shell trap '' TERM; sleep {token}"}], tools=["exec"]))
            for i in range(count)
        ]
        print("ready", flush=True)
        await stop.wait()
    for ex in exs:
        print(ex.state.value, flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
