"""`make bench`: run every tests/bench/bench_*.py module's run(large) in turn; each prints its own numbers."""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Run the benchmarks named on the command line (default: all), bounded by each module's own limits."""
    sys.path[:0] = [str(HERE.parent), str(HERE.parent.parent / "collections"), str(HERE.parent.parent / "src")]
    large = os.environ.get("BM_BENCH_LARGE") == "1"
    names = sys.argv[1:] or sorted(p.stem for p in HERE.glob("bench_*.py"))
    failed = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n== {name} ==", flush=True)
        started = time.monotonic()
        try:
            module.run(large)
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            failed += 1
            print(f"!! {name} failed: {exc!r}", flush=True)
        print(f"-- {name}: {time.monotonic() - started:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
