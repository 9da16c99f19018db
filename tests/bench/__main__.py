"""`python -m tests.bench [--quick] [--json FILE] [--only NAME ...]`

Starts real servers on loopback and measures through the public API; every figure is
printed next to its baseline, measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import psutil

from .measures import BENCHES, Run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--quick", action="store_true", help="fewer trials, smaller loads (CI)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="run only these benchmarks")
    parser.add_argument("--markdown", type=Path, metavar="JSON", help="print a saved run as a Markdown table")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())["figures"]))
        return 0
    run = Run(quick=args.quick)
    started = time.time()
    print(f"KakoClaw benchmarks ({'quick' if args.quick else 'full'}) on {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}", flush=True)
    failures = []
    for name in args.only or BENCHES:
        try:
            BENCHES[name](run)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"benchmark {name} failed: {type(exc).__name__}: {exc}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "mode": "quick" if args.quick else "full",
            "cores": psutil.cpu_count(),
            "seconds": round(time.time() - started, 1),
            "figures": [f.row() for f in run.figures],
            "failures": failures,
        }, indent=2))
    return 1 if failures else 0


def markdown(figures: list[dict]) -> str:
    rows = ["| figure | value | baseline (same run) | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for f in figures:
        value = f"{f['value']:,.2f} {f['unit']}"
        if f.get("note"):
            value += f" ({f['note']})"
        base = f"{f['baseline']:,.2f} ({f['baseline_name']})" if "baseline" in f else ""
        ratio = f"{f['ratio']:.2f}" if "ratio" in f else ""
        met = {True: "yes", False: "**no**"}.get(f.get("met"), "")
        rows.append(f"| {f['name']} | {value} | {base} | {ratio} | {f.get('goal', '')} | {met} |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
