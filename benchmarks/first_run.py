"""What a new user waits for: `gmsr --help`, `gmsr --version`, and the first and second reconstruction
(the first compiles the CPU kernels; numba caches them for every later run).

Runs the package of this checkout in child processes, with numba's cache moved to an empty
temporary folder (NUMBA_CACHE_DIR) so that the first run is a real first run; the checkout's own
cache is not touched. Prints seconds per step.

    python benchmarks/first_run.py [--photo examples/peppers.png] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gmsr_cli.cli.main", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default=str(REPO_ROOT / "examples" / "peppers.png"))
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba"),
                   PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for args in (["--help"], ["--version"]):
            runs = [timed(args, env) for _ in range(opts.repeats)]
            print(f"gmsr {args[0]}: median {statistics.median(runs):.2f} s of {opts.repeats}")
        out = str(Path(tmp) / "cube.h5")
        command = ["reconstruct", opts.photo, "-o", out, "--device", "cpu", "--overwrite", "-q"]
        print(f"first reconstruct (compiles the CPU kernels): {timed(command, env):.1f} s")
        runs = [timed(command, env) for _ in range(opts.repeats)]
        print(f"later reconstructs: median {statistics.median(runs):.1f} s of {opts.repeats}")


if __name__ == "__main__":
    main()
