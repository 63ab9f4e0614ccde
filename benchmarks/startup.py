"""CLI start-up (issue 16 item 4): ``artifacts --version`` and ``--help`` as new processes, interleaved
with ``python -c pass`` (this machine's interpreter start-up at that moment) and ``import click``.

Each command runs the way the console script runs it (``from artifacts.cli import main; main()``) from
this checkout. Bytecode caches are used (``PYTHONDONTWRITEBYTECODE`` is dropped for the children, as
on any installed copy; the first round writes them and is not counted). Medians and best runs.

    python benchmarks/startup.py [--repeat 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._common import load_line, table  # noqa: E402

MAIN = "import sys; from artifacts.cli import main; sys.exit(main())"
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import click'": ["-c", "import click"],
    "artifacts --version": ["-c", MAIN, "--version"],
    "artifacts --help": ["-c", MAIN, "--help"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=21)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO)
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for r in range(args.repeat + 1):
        for name, argv in COMMANDS.items():
            t = time.perf_counter()
            subprocess.run([sys.executable, *argv], env=env, check=True, stdout=subprocess.DEVNULL)
            if r:  # round 0 writes the bytecode caches
                times[name].append(time.perf_counter() - t)
    base = statistics.median(times["python -c pass"])
    rows = [
        (k, 1000 * statistics.median(v), 1000 * min(v), 1000 * (statistics.median(v) - base))
        for k, v in times.items()
    ]
    print(f"{args.repeat} interleaved rounds")
    print(table(rows, ("command", "median ms", "best ms", "ms over python -c pass")))
    print(load_line())


if __name__ == "__main__":
    main()
