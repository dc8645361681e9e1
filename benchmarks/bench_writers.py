"""Cube writer throughput: MB/s of float32 cube written per format and option, on 1 core and on all cores.

    python benchmarks/bench_writers.py [--size 1024] [--repeats 3] [--cube CUBE] [--save-cube CUBE] [--only hdf5,tiff]

The cube is realistic, because compression speed depends on the values: the shipped weights'
reconstruction of examples/peppers.png upscaled (bicubic) to SIZE x SIZE, or any cube file given
with --cube (--save-cube keeps the reconstruction for later runs). Each configuration streams the
cube to a fresh file in a temporary folder through `open_cube_writer`, 224 rows at a time (what
`gmsr reconstruct` hands over with the default tiles), and the time runs from opening the writer to
the file renamed into place. "1 core" pins this process to one CPU (sched_setaffinity), so the
writer's worker threads share it; "all" uses every CPU. MB/s counts the float32 cube
(H * W * 31 * 4 bytes) whatever the file holds; "MB/cpu-s" divides it by the CPU time of this
process (all threads; median over both runs), which other jobs on a shared machine do not
change; "size" is the file size against the float32 cube.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROWS_PER_CALL = 224  # default tile 256 minus overlap 32: the rows one tile row completes

# (label, file name, writer options)
CONFIGS = [
    ("hdf5 gzip 1 + shuffle (default)", "c.h5", {}),
    ("hdf5 gzip 1, keep_bits=12", "c.h5", {"keep_bits": 12}),
    ("hdf5 gzip 4", "c.h5", {"compression_level": 4}),
    ("hdf5 lzf", "c.h5", {"compression": "lzf"}),
    ("hdf5 uncompressed", "c.h5", {"compression": "none"}),
    ("envi", "c.hdr", {}),
    ("mat v5", "c.mat", {"mat_version": "5"}),
    ("mat v7.3", "c.mat", {"mat_version": "7.3"}),
    ("tiff uncompressed (default)", "c.tif", {}),
    ("tiff deflate", "c.tif", {"compression": "deflate"}),
    ("tiff zstd", "c.tif", {"compression": "zstd"}),
    ("tiff lzw", "c.tif", {"compression": "lzw"}),
    ("npy", "c.npy", {}),
]


def realistic_cube(size: int) -> np.ndarray:
    """(size, size, 31) float32: the shipped weights' cube of an example photo, upscaled."""
    from PIL import Image

    from gmsr_cli.api import load_model, reconstruct_image

    photo = Image.open(REPO / "examples" / "peppers.png").convert("RGB").resize((size, size), Image.BICUBIC)
    model = load_model("gmsr-cave-srgb", device="cpu")
    return reconstruct_image(np.asarray(photo), model=model)


def write_once(cube: np.ndarray, path: Path, options: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of one write."""
    from gmsr_cli.io import open_cube_writer
    from gmsr_cli.io.registry import output_paths

    for p in output_paths(path):
        p.unlink(missing_ok=True)
    h, w, _ = cube.shape
    wl = np.arange(400.0, 701.0, 10.0)
    start, cpu = time.perf_counter(), time.process_time()
    with open_cube_writer(path, h, w, wl, **options) as writer:
        for y0 in range(0, h, ROWS_PER_CALL):
            writer.write_rows(y0, cube[y0 : y0 + ROWS_PER_CALL])
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cube", type=Path, default=None, help="use this cube file instead of a reconstruction")
    parser.add_argument("--save-cube", type=Path, default=None, help="save the reconstruction here (.npy)")
    parser.add_argument("--only", default=None, help="comma-separated prefixes of the configurations to run")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from gmsr_cli.io import read_cube
    from gmsr_cli.io.codecs import deflate_backend
    from gmsr_cli.io.registry import output_paths

    if args.cube is not None:
        with read_cube(args.cube) as c:
            cube = c.to_array().astype(np.float32)
        source = str(args.cube)
    else:
        cube = realistic_cube(args.size)
        source = f"gmsr-cave-srgb reconstruction of examples/peppers.png upscaled to {args.size} x {args.size}"
        if args.save_cube is not None:
            np.save(args.save_cube, cube)
    cube = np.ascontiguousarray(cube, dtype=np.float32)
    mb = cube.nbytes / 1e6
    all_cpus = os.sched_getaffinity(0)
    print(f"cube: {source}; {cube.shape}, {mb:.0f} MB float32, values {cube.min():.3f}..{cube.max():.3f}")
    print(f"cpus: {len(all_cpus)}; deflate levels 1-3 by {deflate_backend()}; median of {args.repeats}")
    print(f"{'format':34s} {'1 core MB/s':>12s} {'all MB/s':>10s} {'MB/cpu-s':>9s} {'size':>7s}")
    configs = CONFIGS
    if args.only:
        prefixes = [p.strip() for p in args.only.split(",")]
        configs = [c for c in CONFIGS if any(c[0].startswith(p) for p in prefixes)]
    with tempfile.TemporaryDirectory(prefix="gmsr-bench-") as tmp:
        for label, name, options in configs:
            path = Path(tmp) / name
            rates, cpu = {}, []
            for cores, cpus in (("1", {min(all_cpus)}), ("all", all_cpus)):
                os.sched_setaffinity(0, cpus)
                try:
                    runs = [write_once(cube, path, options) for _ in range(args.repeats)]
                finally:
                    os.sched_setaffinity(0, all_cpus)
                rates[cores] = mb / statistics.median(r[0] for r in runs)
                cpu += [r[1] for r in runs]
            size = sum(p.stat().st_size for p in output_paths(path)) / cube.nbytes
            print(f"{label:34s} {rates['1']:12.0f} {rates['all']:10.0f} {mb / statistics.median(cpu):9.0f} "
                  f"{size:7.2f}", flush=True)


if __name__ == "__main__":
    main()
