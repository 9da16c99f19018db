"""A runner for the fan-out benchmark: emits timestamped deltas at a steady rate.

Message content: "<rate per second> <count>". Each delta's text is the wall-clock time
it was written, so a subscriber can compute delivery latency.
"""

import json
import sys
import time

spec = json.loads(sys.stdin.readline())
rate, count = (float(x) for x in spec["messages"][-1]["content"].split())
out = sys.stdout
start = time.monotonic()
for i in range(int(count)):
    due = start + i / rate
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    out.write(json.dumps({"type": "delta", "text": f"{time.time():.6f} "}) + "\n")
    out.flush()
out.write(json.dumps({"type": "message", "content": "done"}) + "\n")
