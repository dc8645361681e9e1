"""Peak memory of reconstructing a large photo on the CPU: `gmsr reconstruct` in a child process, its ru_maxrss.

    python benchmarks/bench_memory.py [--width 6000] [--height 4000] [--format hdf5] [--weights NAME|PATH]

Writes a synthetic photo (smooth colour gradients with fine texture, 8-bit PNG) to a temporary
folder, runs `gmsr reconstruct` on it with the default tile settings (or --tile/--overlap) on the
CPU, and prints the child's peak resident memory (ru_maxrss from wait4, so only that process
counts), wall time and output size. Without the shipped weights a random-init weights file is
used: memory and time do not depend on the weight values. The float32 cube of a 6000 x 4000
photo alone is 6000 * 4000 * 31 * 4 bytes = 2.98 GB; the target is a peak of 2 GB or less.
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


def write_photo(path: Path, width: int, height: int) -> None:
    """A synthetic 8-bit photo, written row band by row band so this process stays small too."""
    from PIL import Image

    rng = np.random.default_rng(0)
    image = Image.new("RGB", (width, height))
    step = 500
    for y0 in range(0, height, step):
        y1 = min(height, y0 + step)
        yy, xx = np.mgrid[y0:y1, 0:width].astype(np.float32)
        rgb = np.stack([0.5 + 0.4 * np.sin(xx / 700 + yy / 900), 0.5 + 0.4 * np.cos(xx / 500 - yy / 300),
                        0.2 + 0.6 * (xx + yy) / (width + height)], axis=-1)
        rgb += rng.normal(0, 0.02, rgb.shape).astype(np.float32)  # texture, as real photos have
        image.paste(Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)), (0, y0))
    image.save(path, compress_level=1)


def weights_argument(requested: str | None, folder: Path) -> tuple[str, str]:
    from gmsr_cli.model.weights import DEFAULT_WEIGHTS, save_weights, shipped_weight_names

    if requested:
        return requested, requested
    if DEFAULT_WEIGHTS in shipped_weight_names():
        return DEFAULT_WEIGHTS, DEFAULT_WEIGHTS
    from gmsr_cli.model.gmsr import GMSRNet

    path = save_weights(GMSRNet(), folder / "random-init.safetensors", card={"name": "random-init"})
    return str(path), "random-init (shipped weights absent; memory does not depend on the values)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--format", default="hdf5", choices=sorted(EXTENSIONS))
    parser.add_argument("--weights", default=None)
    parser.add_argument("--tile", default=None, help="--tile for gmsr (default: its default)")
    parser.add_argument("--overlap", default=None, help="--overlap for gmsr (default: its default)")
    parser.add_argument("--workdir", default=None, help="folder for the photo and cube (default: a temporary one)")
    args = parser.parse_args()

    from gmsr_cli.tiling import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX, plan_tiles

    folder = Path(args.workdir or tempfile.mkdtemp(prefix="gmsr-bench-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        photo = folder / "photo.png"
        start = time.perf_counter()
        write_photo(photo, args.width, args.height)
        print(f"photo {args.width} x {args.height}: {photo.stat().st_size / 2**20:.0f} MiB PNG, "
              f"written in {time.perf_counter() - start:.0f} s", flush=True)
        weights, weights_label = weights_argument(args.weights, folder)
        output = folder / f"cube{EXTENSIONS[args.format]}"
        tile = int(args.tile) if args.tile is not None else DEFAULT_TILE_PX
        overlap = int(args.overlap) if args.overlap is not None else DEFAULT_OVERLAP_PX
        command = [sys.executable, "-m", "gmsr_cli.cli.main", "reconstruct", str(photo), "-o", str(output),
                   "--device", "cpu", "--weights", weights, "--quiet", "--tile", str(tile), "--overlap", str(overlap)]
        start = time.perf_counter()
        child = subprocess.Popen(command)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            sys.exit(f"gmsr reconstruct failed with exit status {child.returncode}")
        peak_bytes = usage.ru_maxrss * 1024  # Linux reports KiB
        size = sum(p.stat().st_size for p in folder.glob("cube*"))
        n_tiles = sum(len(r) for r in plan_tiles(args.height, args.width, tile, overlap))
        cube_bytes = args.width * args.height * 31 * 4
        print(f"weights: {weights_label}")
        print(f"tiles: {tile} px, overlap {overlap} px: {n_tiles} tiles; threads: {os.cpu_count()} CPUs")
        print(f"peak resident memory: {peak_bytes / 1e9:.2f} GB ({peak_bytes / 2**30:.2f} GiB); "
              f"the float32 cube is {cube_bytes / 1e9:.2f} GB")
        print(f"time: {seconds:.0f} s ({seconds / (args.width * args.height / 1e6):.1f} s per megapixel)")
        print(f"output: {args.format}, {size / 1e9:.2f} GB")
    finally:
        if args.workdir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
