"""A misbehaving runner for the engine's untrusted-output tests.

It reads the job spec like the real runner and misbehaves as the last user message says.
"""

import json
import os
import signal
import sys
import time

spec = json.loads(sys.stdin.readline())
mode = spec["messages"][-1]["content"]
out = sys.stdout.buffer


def emit(obj):
    out.write((json.dumps(obj) + "\n").encode())
    out.flush()


def finish():
    emit({"type": "message", "content": "done"})
    sys.exit(0)


if mode == "nonjson":
    out.write(b"this is not json\n{\"type\": \"delta\"\n[1,2]\n{\"type\":\"wat\"}\n")
    emit({"type": "delta", "text": "still here"})
    finish()
elif mode == "badutf8":
    out.write(b"\xff\xfe\xfd{\"type\":\"delta\",\"text\":\"x\"}\n")
    emit({"type": "delta", "text": "after"})
    finish()
elif mode == "bigline":
    out.write(b'{"type":"delta","text":"' + b"A" * (5 * 1024 * 1024) + b'"}\n')
    emit({"type": "delta", "text": "after big"})
    finish()
elif mode == "flood":
    chunk = (b"x" * 1023 + b"\n") * 1024  # 1 MiB of non-JSON lines
    for _ in range(100):
        out.write(chunk)
    out.flush()
    finish()
elif mode == "crash":
    sys.exit(3)
elif mode == "segv":
    out.flush()
    os.kill(os.getpid(), signal.SIGSEGV)
elif mode == "silent":
    sys.exit(0)
elif mode == "closeout":
    emit({"type": "delta", "text": "closing"})
    os.close(1)
    sys.stdout = None
    time.sleep(120)
else:
    emit({"type": "delta", "text": mode})
    finish()
