"""`python -m agent_runner`: read one job spec line from stdin, run the agent, exit.

The supervisor may start a runner ahead of time (a warm pool): it blocks on stdin until
the spec arrives, with its imports already done.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from .loop import run_agent
from .output import EventWriter
from .protocol import EXIT_BAD_SPEC, EXIT_FAILED, JobSpec, ProtocolError
from .providers import ModelError, make_provider
from .tools import select_tools

EXIT_TERMINATED = 128 + signal.SIGTERM


async def _main(spec: JobSpec, out: EventWriter) -> int:
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        provider = make_provider(spec.model)
    except ModelError as exc:
        out.emit("error", message=str(exc))
        return EXIT_FAILED
    try:
        return await run_agent(spec, provider, select_tools(spec.tools), out)
    except asyncio.CancelledError:
        if terminated:
            return EXIT_TERMINATED
        raise
    finally:
        try:
            await asyncio.wait_for(provider.aclose(), 0.5)
        except (Exception, asyncio.CancelledError):
            pass


def main() -> int:
    # Anything other than protocol events goes to stderr, so stray prints cannot corrupt stdout.
    out = EventWriter(sys.stdout.buffer)
    sys.stdout = sys.stderr
    line = sys.stdin.buffer.readline()
    if not line.strip():
        print("agent_runner: no job spec on stdin", file=sys.stderr)
        return EXIT_BAD_SPEC
    try:
        spec = JobSpec.from_line(line)
    except ProtocolError as exc:
        out.emit("error", message=f"bad job spec: {exc}")
        return EXIT_BAD_SPEC
    if spec.workspace and os.path.isdir(spec.workspace):
        os.chdir(spec.workspace)
    code = asyncio.run(_main(spec, out))
    if code == EXIT_TERMINATED:
        # Canceled: leave at once, without the interpreter's teardown (tens of ms).
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
