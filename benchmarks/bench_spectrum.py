"""Time and peak memory of `gmsr spectrum` and `gmsr view` on a large cube: they read only what they show.

    python benchmarks/bench_spectrum.py [--width 6000] [--height 4000] [--formats envi,hdf5] [--keep DIR]

Writes a synthetic float32 cube (smooth spectra varying over the image) of the given size in each
format to a temporary folder (or DIR), then runs, each in a fresh child process:

- `gmsr --version` (the baseline: Python, torch and the command modules imported),
- `gmsr spectrum CUBE --at X,Y --json` (one pixel),
- `gmsr spectrum CUBE --box ... --json` (a 200 x 200 box),
- `gmsr spectrum CUBE --at ... --box ... -o plot.png` (a plot with its strided thumbnail),
- `gmsr view CUBE` (the default pixel budget: a strided copy of the cube),

and prints each one's wall time and peak resident memory (ru_maxrss from wait4: that child only).
The cube of 6000 x 4000 x 31 float32 is 2.98 GB; the page cache holds it after writing, so the
times are those of a warm cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EXTENSIONS = {"hdf5": ".h5", "envi": ".hdr", "mat": ".mat", "tiff": ".tif", "npy": ".npy"}


def write_cube(path: Path, height: int, width: int) -> float:
    """A synthetic cube, written in row blocks so that this process stays small. Returns seconds."""
    from gmsr_cli.io import open_cube_writer
    from gmsr_cli.spectra import WAVELENGTHS_NM

    start = time.perf_counter()
    wl = (WAVELENGTHS_NM - 400.0) / 300.0
    with open_cube_writer(path, height, width, WAVELENGTHS_NM) as writer:
        for y0 in range(0, height, 200):
            y1 = min(height, y0 + 200)
            yy, xx = np.mgrid[y0:y1, 0:width].astype(np.float32)
            a = (0.5 + 0.4 * np.sin(xx / 700 + yy / 900))[..., None]
            b = (0.5 + 0.4 * np.cos(xx / 500 - yy / 300))[..., None]
            block = 0.05 + 0.6 * a * np.exp(-((wl - 0.8) / 0.2) ** 2) + 0.5 * b * np.exp(-((wl - 0.3) / 0.2) ** 2)
            writer.write_rows(y0, block.astype(np.float32))
    return time.perf_counter() - start


def measure(args: list[str]) -> tuple[float, float, int]:
    """(seconds, peak resident MB, exit code) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"  failed ({code}): {' '.join(args)}: {child.stderr.read().decode().strip()}")
    child.stderr.close()
    return seconds, usage.ru_maxrss / 1024, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--formats", default="envi,hdf5")
    parser.add_argument("--keep", type=Path, default=None, help="folder for the cubes (kept); default: a temporary one")
    parser.add_argument("--write", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write is not None:
        print(f"writing {args.write.name} ... {write_cube(args.write, args.height, args.width):.1f} s", flush=True)
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="gmsr-bench-spectrum-"))
    folder.mkdir(parents=True, exist_ok=True)
    gmsr = [sys.executable, "-m", "gmsr_cli.cli.main"]
    h, w = args.height, args.width
    print(f"cube {w} x {h} x 31 float32 = {h * w * 31 * 4 / 1e9:.2f} GB; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    try:
        seconds, rss, _ = measure(gmsr + ["--version"])
        print(f"baseline (gmsr --version): {seconds:.2f} s, {rss:.0f} MB")
        for name in args.formats.split(","):
            cube = folder / f"bench{EXTENSIONS[name]}"
            if not cube.exists():
                # In a child: a forked child starts with its parent's peak resident memory
                # (ru_maxrss survives fork and exec), so this process must stay small.
                subprocess.run([sys.executable, __file__, "--write", str(cube), "--width", str(w),
                                "--height", str(h)], check=True)
            runs = {
                "one pixel (--at, --json)": ["spectrum", str(cube), "--at", f"{w // 2},{h // 3}", "--json"],
                "200 x 200 box (--json)": ["spectrum", str(cube), "--box", f"100,100,300,300", "--json"],
                "plot with thumbnail": ["spectrum", str(cube), "--at", f"{w // 2},{h // 3}", "--box",
                                        "100,100,300,300", "-o", str(folder / f"plot_{name}.png"), "--overwrite"],
                "gmsr view (default budget)": ["view", str(cube), "-o", str(folder / f"view_{name}.html"),
                                               "--overwrite"],
            }
            for label, command in runs.items():
                seconds, rss, code = measure(gmsr + command)
                extra = ""
                if command[0] == "view" and code == 0:
                    extra = f", page {(folder / f'view_{name}.html').stat().st_size / 2**20:.1f} MB"
                print(f"{name:5s} {label:28s} {seconds:6.2f} s  {rss:6.0f} MB peak{extra}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
