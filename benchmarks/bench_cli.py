"""A photo on the CPU end to end: wall time of `gmsr reconstruct` in a fresh process, and where it goes.

    python benchmarks/bench_cli.py [--sizes 512x512,2048x1536,4000x3000] [--repeats 3]
                                   [--compare /path/to/other/checkout] [--weights NAME|PATH]

For each size a synthetic 8-bit PNG photo (benchmarks/bench_memory.py's smooth gradients with fine
noise) is written to a temporary folder and reconstructed to .h5 on the CPU with the default
tiles:
  wall      `python -m gmsr_cli.cli.main reconstruct photo.png -o cube.h5 --device cpu --quiet`
            in a fresh process, start-up included; median (and all runs) of --repeats;
  split     one fresh process running the same library calls as `gmsr reconstruct` with a clock
            around each: start-up (import of gmsr_cli.reconstruct, and the model: weights read,
            scan kernels bound; torch is imported there where the tree needs it), read (photo decoded to 8-bit values),
            network (tiled_forward, less the time inside the exact colour correction and the
            writer), colour (the exact colour correction, where the weights have it on), write
            (the writer's write_rows and close);
  pixels    the network's pixels (tiles x tile area) over the photo's.
With --compare, the same runs are made with PYTHONPATH set to the other checkout (for example
`git worktree add /tmp/before 90b5456`), interleaved run by run with this one so that both see
the same load; the load average (1 min) is printed with every run because the machine may be
shared. The numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import weights_argument, write_photo  # noqa: E402

HERE = Path(__file__).resolve().parent.parent


def split_child(photo: str, output: str, weights: str) -> None:
    """The steps of `gmsr reconstruct` (gmsr_cli.reconstruct.reconstruct_file) with a clock around
    each; prints one JSON line. Runs in a fresh process; uses whatever gmsr_cli PYTHONPATH finds."""
    t0 = time.perf_counter()
    from gmsr_cli.memory import tune_malloc

    tune_malloc()  # as `gmsr` does at start
    from gmsr_cli import reconstruct as rec
    from gmsr_cli.io import open_cube_writer
    from gmsr_cli.spectra import WAVELENGTHS_NM
    from gmsr_cli.tiling import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX, plan_tiles, tiled_forward

    t_import = time.perf_counter()
    model = rec.load_model(weights, "cpu", "auto")
    t_model = time.perf_counter()
    image = rec._read_photo(Path(photo), None)
    height, width, bit_depth = image.height, image.width, image.bit_depth
    pixels = rec._compact_pixels(image)
    del image
    t_read = time.perf_counter()
    try:  # exact colour (on by default for sRGB weights) came after some of the trees compared
        from gmsr_cli.colour import correcting_rows, resolve_exact_colour

        exact = resolve_exact_colour(None, model)
        attrs = rec.provenance_attrs(Path(photo), model, DEFAULT_TILE_PX, DEFAULT_OVERLAP_PX, False, bit_depth, exact)
    except (ImportError, TypeError):  # no exact colour in that tree
        exact = False
        attrs = rec.provenance_attrs(Path(photo), model, DEFAULT_TILE_PX, DEFAULT_OVERLAP_PX, False, bit_depth)
    writing = [0.0]
    in_rows = [0.0]  # all of on_rows: the colour step, where on, and the writer
    with open_cube_writer(Path(output), height, width, WAVELENGTHS_NM, format=None, dtype="float32",
                          overwrite=True, attrs=attrs) as writer:
        def write(y0, block):
            start = time.perf_counter()
            writer.write_rows(y0, block)
            writing[0] += time.perf_counter() - start

        # As reconstruct_file: the colour step (the project's own correcting_rows) before the writer.
        rows_step = correcting_rows(write, pixels, model.camera) if exact else write

        def on_rows(y0, block):
            start = time.perf_counter()
            rows_step(y0, block)
            in_rows[0] += time.perf_counter() - start

        runner = getattr(model, "runner", None) or model.module  # the CPU engine, where the tree has it
        tiled_forward(runner, pixels, tile_px=DEFAULT_TILE_PX, overlap_px=DEFAULT_OVERLAP_PX,
                      device=model.device, on_rows=on_rows)
        t_net = time.perf_counter()
    t_end = time.perf_counter()
    rows = plan_tiles(height, width, DEFAULT_TILE_PX, DEFAULT_OVERLAP_PX)
    tile = rows[0][0]
    n_tiles = sum(len(r) for r in rows)
    print(json.dumps({
        "import": t_import - t0, "model": t_model - t_import, "read": t_read - t_model,
        "network": t_net - t_read - in_rows[0], "colour": in_rows[0] - writing[0],
        "write": writing[0] + (t_end - t_net), "total": t_end - t0,
        "tiles": n_tiles, "tile": [tile.height, tile.width],
        "pixel_ratio": n_tiles * tile.height * tile.width / (height * width)}))


def run(command: list[str], pythonpath: str, cwd: Path) -> float:
    # cwd: `python -m` puts the working directory before PYTHONPATH on sys.path, so run from a
    # checkout it would time that checkout's gmsr_cli whatever PYTHONPATH says (as this script
    # did, when started from the repository root, before 2026-11-29).
    env = dict(os.environ, PYTHONPATH=pythonpath)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="512x512,2048x1536,4000x3000", help="WIDTHxHEIGHT, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", default=None, help="another checkout to time the same way (PYTHONPATH)")
    parser.add_argument("--weights", default=None, help="default: the shipped weights, else random-init")
    parser.add_argument("--no-split", action="store_true", help="wall times only")
    parser.add_argument("--compare-first", action="store_true", help="run the other checkout first in each pair")
    parser.add_argument("--split-child", nargs=3, metavar=("PHOTO", "OUTPUT", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.split_child:
        split_child(*args.split_child)
        return

    trees = {"this": str(HERE)}
    if args.compare:
        trees["compare"] = str(Path(args.compare).resolve())
        if args.compare_first:
            trees = {"compare": trees["compare"], "this": trees["this"]}
    folder = Path(tempfile.mkdtemp(prefix="gmsr-bench-cli-"))
    try:
        weights, label = weights_argument(args.weights, folder)
        print(f"weights: {label}; CPUs: {os.cpu_count()}; trees: {trees}", flush=True)
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            photo = folder / f"photo-{width}x{height}.png"
            write_photo(photo, width, height)
            output = folder / "cube.h5"
            command = [sys.executable, "-m", "gmsr_cli.cli.main", "reconstruct", str(photo), "-o", str(output),
                       "--device", "cpu", "--weights", weights, "--quiet", "--overwrite"]
            walls: dict[str, list[float]] = {name: [] for name in trees}
            for i in range(args.repeats):
                for name, tree in trees.items():
                    load = os.getloadavg()[0]
                    seconds = run(command, tree, folder)
                    walls[name].append(seconds)
                    print(f"{width}x{height} {name} run {i + 1}: {seconds:.2f} s wall (load {load:.2f})", flush=True)
            for name, tree in trees.items():
                line = (f"{width}x{height} {name}: median {statistics.median(walls[name]):.2f} s wall "
                        f"(runs {', '.join(f'{s:.2f}' for s in walls[name])})")
                if not args.no_split:
                    load = os.getloadavg()[0]
                    env = dict(os.environ, PYTHONPATH=tree)
                    done = subprocess.run([sys.executable, __file__, "--split-child", str(photo), str(output), weights],
                                          env=env, capture_output=True, text=True)
                    if done.returncode != 0:
                        sys.exit(f"split run failed: {done.stderr.strip()[-2000:]}")
                    s = json.loads(done.stdout.strip().splitlines()[-1])
                    line += (f"; split (load {load:.2f}): import {s['import']:.2f} + model {s['model']:.2f} "
                             f"+ read {s['read']:.2f} + network {s['network']:.2f} + colour {s.get('colour', 0):.2f} "
                             f"+ write {s['write']:.2f} "
                             f"= {s['total']:.2f} s; {s['tiles']} tiles of {s['tile'][0]} x {s['tile'][1]}, "
                             f"{s['pixel_ratio']:.3f}x the photo's pixels")
                print(line, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
