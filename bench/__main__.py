"""Run the benchmarks and print a table of their measurements.

Each `bench/bench_<name>.py` exposes `run(args) -> list[dict]`; a row has `bench`, `case`, and any of
`n`, `p50_ms`, `p95_ms`, `queries`, `total_s`, `value`, `unit`, `target`, `note`.
`python -m bench [name ...]` runs only the named ones; `--quick` asks each for a smaller data set.
"""

import argparse
import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path

COLUMNS = ["bench", "case", "n", "p50_ms", "p95_ms", "queries", "total_s", "value", "unit", "target", "note"]


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name[len("bench_") :] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")
    )


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def print_table(rows: list[dict]) -> None:
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    widths = {c: max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in cols}
    print(" | ".join(c.ljust(widths[c]) for c in cols))
    print("-|-".join("-" * widths[c] for c in cols))
    for r in rows:
        print(" | ".join(fmt(r.get(c)).ljust(widths[c]) for c in cols))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(discover())})"
    )
    parser.add_argument("--quick", action="store_true", help="smaller data sets, for a smoke run")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeportal.settings")
    rows: list[dict] = []
    for name in args.names or discover():
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.monotonic()
        print(f"# {name} …", file=sys.stderr, flush=True)
        rows.extend(module.run(args))
        print(f"# {name} done in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
