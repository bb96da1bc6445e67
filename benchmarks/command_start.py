"""How long a command on the digits takes from its start to its answer, with the digits read from
assets/digits.safetensors against asked of scikit-learn (whose import pulls in scipy and pandas).

Each repeat runs both, alternating, as fresh processes: `python -m pof evaluate` on the bundled
digits model, the command a user or a job meets most, with the loader's file set to the shipped
one or to a missing one (the loader then asks scikit-learn, as before the file existed). Prints
the medians and their ratio.

    python benchmarks/command_start.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "assets" / "digits-cnn-small-sgd.safetensors"

# the same wrapper for both: only the file the loader reads differs
WRAPPER = """
import runpy, sys
from pathlib import Path
import pof.data.offline as offline
if sys.argv[1] == "missing":
    offline.DIGITS_FILE = Path("/nonexistent/digits.safetensors")
sys.argv = ["pof", "evaluate", sys.argv[2]]
runpy.run_module("pof", run_name="__main__")
"""


def timed(variant: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", WRAPPER, variant, str(CHECKPOINT)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    timed("shipped")  # warm the file cache for both
    times = {"shipped": [], "missing": []}
    for _ in range(args.repeats):
        for variant in times:
            times[variant].append(timed(variant))
    shipped, asked = (statistics.median(times[v]) for v in ("shipped", "missing"))
    print(f"python -m pof evaluate (digits), median of {args.repeats}:")
    print(f"  digits from assets/digits.safetensors  {shipped:.2f} s")
    print(f"  digits asked of scikit-learn            {asked:.2f} s")
    print(f"  ratio file / scikit-learn               {shipped / asked:.2f}")


if __name__ == "__main__":
    main()
