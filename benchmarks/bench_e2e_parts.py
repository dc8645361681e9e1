"""The parts of a photo's end-to-end time, each against the way it was done before, in one process.

    python benchmarks/bench_e2e_parts.py plans [--size 2048x1536] [--repeats 2]
    python benchmarks/bench_e2e_parts.py writer [--size 4000x3000] [--repeats 2]
    python benchmarks/bench_e2e_parts.py colour
    python benchmarks/bench_e2e_parts.py teardown [--repeats 3]
    python benchmarks/bench_e2e_parts.py stages [--size 473x470] [--repeats 6]
    python benchmarks/bench_e2e_parts.py numba-start [--repeats 3]
    python benchmarks/bench_e2e_parts.py engine [--size 512x512] [--repeats 3]

plans     the network alone (tiled_forward, no writer), then reconstruct_file to .h5, with the
          band plan (tiles up to 2 x --tile, the default) and with equal 256 px tiles
          (max_tile_px=256), alternated; prints seconds, network pixels and us per pixel;
writer    reconstruct_file to .h5 (band plan) with the chunk writer's queue and lower-priority
          workers (gmsr_cli/io/chunks.py QUEUE_BYTES, codecs.py WORKER_NICE) and without them (two
          chunk rows, same priority: the writer before 2026-11-29), alternated; also CPU time;
colour    the exact colour step of one 441 x 4000 tile row (correcting_rows), three times;
teardown  seconds from the end of `gmsr reconstruct` (512 x 512) to the end of its process, with
          the console script's os._exit and with a normal interpreter exit;
stages    one forward pass of a tile (default 473 x 470, the band plan's tile of a 4000 x 3000
          photo) on random pixels through the CPU engine (model/cpu_engine.py, what GMSRNet.forward
          runs for CPU inference) and channels-first as published (forward_published),
          alternated, plus each one's growth of peak resident memory in a fresh process;
numba-start  in fresh processes: loading the model (numba's CPU target starts there) and the
          first 512 x 512 pass, with numba's BLAS probe skipped as `gmsr` does
          (scan/numba_start.py) and with it;
engine    in fresh processes that never import torch (as `gmsr` on a CPU): the CPU engine's
          first and second pass at --size (default 512 x 512), with numpy's OpenBLAS threads
          sleeping at once after a product (OPENBLAS_THREAD_TIMEOUT=4, what gmsr_cli sets) and
          spinning as by default (28); then in processes with torch imported, where the engine's
          matrix products are torch's (model/matmul.py).
The photos are benchmarks/bench_memory.py's synthetic 8-bit PNGs. The numbers go to
docs/performance.md and docs/tiling.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import write_photo  # noqa: E402

PLANS = {"band (default)": None, "equal 256 px": 256}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _photo(folder: Path, size: str) -> tuple[Path, int, int]:
    width, height = (int(v) for v in size.split("x"))
    path = folder / f"photo-{width}x{height}.png"
    write_photo(path, width, height)
    return path, width, height


def _model():
    from gmsr_cli.memory import tune_malloc

    tune_malloc()  # as gmsr does
    from gmsr_cli.reconstruct import load_model
    from gmsr_cli.tiling import tiled_forward

    model = load_model("gmsr-cave-srgb", "cpu", "auto")
    tiled_forward(model.module, np.zeros((64, 64, 3), np.uint8), on_rows=lambda y, b: None)  # kernels loaded
    return model


def plans(args, folder: Path) -> None:
    from gmsr_cli import reconstruct as rec
    from gmsr_cli import tiling

    model = _model()
    photo, width, height = _photo(folder, args.size)
    image = np.asarray(rec._compact_pixels(rec._read_photo(photo, None)))
    original = tiling.MAX_TILE_FACTOR
    for _ in range(args.repeats):
        for name, max_tile in PLANS.items():
            rows = tiling.plan_tiles(height, width, 256, 32, max_tile)
            pixels = sum(t.height * t.width for row in rows for t in row)
            start = time.perf_counter()
            tiling.tiled_forward(model.module, image, on_rows=lambda y, b: None, max_tile_px=max_tile)
            network = time.perf_counter() - start
            tiling.MAX_TILE_FACTOR = original if max_tile is None else 1  # reconstruct_file's plan
            start = time.perf_counter()
            rec.reconstruct_file(photo, folder / "cube.h5", model=model, overwrite=True)
            whole = time.perf_counter() - start
            tiling.MAX_TILE_FACTOR = original
            print(f"{width}x{height} {name}: {sum(map(len, rows))} tiles of {rows[0][0].height} x "
                  f"{rows[0][0].width}, {pixels / (width * height):.2f}x the pixels; network alone "
                  f"{network:.2f} s ({network / pixels * 1e6:.2f} us a pixel); reconstruct_file to .h5 "
                  f"{whole:.2f} s (load {os.getloadavg()[0]:.1f})", flush=True)


def writer(args, folder: Path) -> None:
    from gmsr_cli import reconstruct as rec
    from gmsr_cli.io import chunks, codecs

    model = _model()
    photo, width, height = _photo(folder, args.size)
    configs = {"queue + lower priority (now)": (chunks.QUEUE_BYTES, codecs.WORKER_NICE),
               "two chunk rows (before)": (0, 0)}
    for _ in range(args.repeats):
        for name, (queue, nice) in configs.items():
            chunks.QUEUE_BYTES, codecs.WORKER_NICE = queue, nice
            cpu, start = _cpu(), time.perf_counter()
            rec.reconstruct_file(photo, folder / "cube.h5", model=model, overwrite=True)
            seconds = time.perf_counter() - start
            print(f"{width}x{height} {name}: {seconds:.2f} s, CPU {_cpu() - cpu:.1f} s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)


def colour(args, folder: Path) -> None:
    from gmsr_cli.colour import correcting_rows

    rng = np.random.default_rng(0)
    photo = rng.integers(1, 255, (441, 4000, 3), dtype=np.uint8)
    block = rng.random((441, 4000, 31), dtype=np.float32)
    step = correcting_rows(lambda y, b: None, photo, "srgb")
    for i in range(3):
        work = block.copy()
        start = time.perf_counter()
        step(0, work)
        print(f"exact colour of a 441 x 4000 row block: {time.perf_counter() - start:.3f} s", flush=True)


def teardown(args, folder: Path) -> None:
    photo, _, _ = _photo(folder, "512x512")
    for _ in range(args.repeats):
        for mode in ("os._exit (now)", "interpreter exit (before)"):
            fast = mode.startswith("os._exit")
            code = ("import sys, time\nfrom gmsr_cli.cli import main\n"
                    f"sys.argv = ['gmsr', 'reconstruct', {str(photo)!r}, '-o', {str(folder / 'c.h5')!r}, "
                    "'--device', 'cpu', '--quiet', '--overwrite']\n"
                    "try:\n    main.cli()\nexcept SystemExit as exc:\n    code = exc.code\n"
                    "print(time.time(), file=sys.stderr, flush=True)\n"
                    + ("main._exit_now(code)\n" if fast else ""))
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=folder)
            ended = time.time()
            if done.returncode != 0:
                sys.exit(done.stderr[-2000:])
            finished = float(done.stderr.strip().splitlines()[-1])
            print(f"teardown with {mode}: {ended - finished:.3f} s", flush=True)


def stages(args, folder: Path) -> None:
    width, height = (int(v) for v in args.size.split("x"))
    # Memory first, in fresh processes started while this one is still small: Linux carries a
    # process's peak resident size across fork and exec, so a child of a large parent reads that.
    for name, method in (("CPU engine (now)", "m(x)"), ("published stages (before)", "m.forward_published(x)")):
        code = ("import resource, torch\n"
                "from gmsr_cli.memory import tune_malloc\ntune_malloc()\n"
                "from gmsr_cli.reconstruct import load_model\n"
                "m = load_model('gmsr-cave-srgb', 'cpu', 'auto').module\n"
                f"x = torch.rand(1, 3, {height}, {width})\n"
                "with torch.inference_mode():\n    m(torch.rand(1, 3, 16, 16))\n"
                "    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
                f"    y = {method}\n"
                "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=folder)
        if done.returncode != 0:
            sys.exit(done.stderr[-2000:])
        print(f"{width}x{height} {name}: peak memory grows {float(done.stdout):.0f} MB in the pass", flush=True)
    import torch

    model = _model().module
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    ways = {"CPU engine (now)": lambda: model(x).permute(0, 2, 3, 1).numpy(),
            "published stages (before)": lambda: model.forward_published(x).permute(0, 2, 3, 1).numpy()}
    times: dict[str, list[float]] = {name: [] for name in ways}
    with torch.inference_mode():
        for _ in range(2):  # first-touch pages and kernel loading out of the way
            for way in ways.values():
                way()
        for _ in range(args.repeats):
            for name, way in ways.items():
                start = time.perf_counter()
                np.copy(way())  # the tiler reads the output as (h, w, 31)
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{width}x{height} {name}: median {np.median(values):.3f} s "
              f"({', '.join(f'{v:.3f}' for v in values)}; load {os.getloadavg()[0]:.1f})", flush=True)


def engine(args, folder: Path) -> None:
    width, height = (int(v) for v in args.size.split("x"))
    code = ("import sys, time\n"
            "if sys.argv[1] == 'torch':\n    import torch\n"
            "import gmsr_cli\nimport numpy as np\nfrom gmsr_cli.memory import tune_malloc\ntune_malloc()\n"
            "from gmsr_cli.scan.numba_start import skip_blas_probe\nskip_blas_probe()\n"
            "from gmsr_cli.reconstruct import load_model\n"
            "engine = load_model('gmsr-cave-srgb', 'cpu', 'auto').engine\n"
            f"x = np.random.default_rng(0).random((1, {height}, {width}, 3), dtype=np.float32)\n"
            "engine(x[:, :16, :16])\ntimes = []\n"
            "for _ in range(2):\n    t = time.perf_counter()\n    engine(x)\n"
            "    times.append(time.perf_counter() - t)\n"
            "print(f'{times[0]:.3f} {times[1]:.3f} {\"torch\" in sys.modules}')\n")
    settings = (("no torch, OPENBLAS_THREAD_TIMEOUT=4 (gmsr now)", "numpy", "4"),
                ("no torch, OPENBLAS_THREAD_TIMEOUT=28 (OpenBLAS's default)", "numpy", "28"),
                ("torch imported (its products)", "torch", "4"))
    for _ in range(args.repeats):
        for name, mode, timeout in settings:
            env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT=timeout)
            done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, cwd=folder,
                                  env=env)
            if done.returncode != 0:
                sys.exit(done.stderr[-2000:])
            first, second, loaded = done.stdout.split()
            print(f"{width}x{height} {name}: first pass {first} s, second {second} s (torch loaded: {loaded}; "
                  f"load {os.getloadavg()[0]:.1f})", flush=True)


def numba_start(args, folder: Path) -> None:
    code = ("import sys, time\nimport torch\nfrom gmsr_cli.memory import tune_malloc\ntune_malloc()\n"
            "from gmsr_cli.scan import numba_start\n"
            "if sys.argv[1] == 'skip':\n    numba_start.skip_blas_probe()\n"
            "from gmsr_cli.reconstruct import load_model\n"
            "t0 = time.perf_counter()\nm = load_model('gmsr-cave-srgb', 'cpu', 'auto').module\n"
            "t1 = time.perf_counter()\n"
            "with torch.inference_mode():\n    m(torch.rand(1, 3, 512, 512))\n"
            "t2 = time.perf_counter()\n"
            "print(f'{t1 - t0:.3f} {t2 - t1:.3f} {\"scipy.linalg\" in sys.modules}')\n")
    for _ in range(args.repeats):
        for mode in ("skip", "probe"):
            done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, cwd=folder)
            if done.returncode != 0:
                sys.exit(done.stderr[-2000:])
            model, first, linalg = done.stdout.split()
            name = "BLAS probe skipped (gmsr now)" if mode == "skip" else "BLAS probe (before, library)"
            print(f"{name}: model {model} s + first 512 x 512 pass {first} s = "
                  f"{float(model) + float(first):.3f} s; scipy.linalg loaded: {linalg}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=("plans", "writer", "colour", "teardown", "stages", "numba-start",
                                         "engine"))
    parser.add_argument("--size", default=None, help="WIDTHxHEIGHT of the synthetic photo")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    args.size = args.size or {"plans": "2048x1536", "writer": "4000x3000", "stages": "473x470",
                              "engine": "512x512"}.get(args.part)
    with tempfile.TemporaryDirectory(prefix="gmsr-bench-parts-") as folder:
        globals()[args.part.replace("-", "_")](args, Path(folder))


if __name__ == "__main__":
    main()
