"""The GPU check: run this as is when a CUDA GPU is available (about 3-5 minutes on one H100/H200).

    python benchmarks/gpu_check.py                 # everything; table on stdout and in $OUT/gpu_check.md
    python benchmarks/gpu_check.py --quick         # smaller sizes (a smoke test; also runs on --device cpu)

What it measures, for every scan backend usable on the device (``gmsr info --system`` lists them;
triton, mamba when mamba-ssm with its CUDA extension imports, chunked), with the shipped weights:
1. correctness: the whole network on a 128 x 128 image against the ``reference`` backend on the same
   device (max absolute and max relative error, relative to the reference's largest value), and on a
   512 x 512 image against ``chunked`` (the reference steps through 262,144 pixels one by one);
2. speed and memory: the network at 512 x 512 batch 1 and on a batch of 8 tiles of 256 x 256, and
   2048 x 2048 in one pass: median wall time over --repeats passes after a warm-up pass, megapixels
   per second, peak GPU memory (torch.cuda.max_memory_allocated), with PyTorch's default flags;
3. a 6000 x 4000 photo end to end through ``reconstruct_file`` to .h5 (read, tiles, write), beside
   the network alone over the same tiles (rows handed to a no-op), so that what limits it shows
   (the first backend only, unless --photo-backends names others).
``mamba`` is the published configuration: its row is the published code's speed on this GPU.
Correctness is measured with TF32 off (full float32 convolutions and products, as on the CPU) and,
for each backend, once more with PyTorch's defaults (cuDNN convolutions in TF32 on Ampere and later),
so that the TF32 rounding shows apart from the kernels' own error.
Numbers, not a test: nothing passes or fails, except that a backend error is printed in its row.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gmsr_cli.api import describe_system, load_model, reconstruct_file
from gmsr_cli.errors import GmsrError
from gmsr_cli.scan import available_backends
from gmsr_cli.tiling import tiled_forward


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


@contextlib.contextmanager
def _tf32(enabled: bool):
    """TF32 for cuDNN convolutions and cuBLAS products on or off inside the block, restored after."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _image(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth, photo-like RGB batch in [0, 1] (gradients and blobs, not noise)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    phase = torch.rand(batch, 3, 1, 1, generator=g) * 6.28
    freq = 2 + torch.rand(batch, 3, 1, 1, generator=g) * 6
    return (0.5 + 0.4 * torch.sin(freq * (xx + 0.7 * yy) * 6.28 + phase)).float()


def _errors(got: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    diff = (got.double() - want.double()).abs().max().item()
    return diff, diff / max(want.abs().max().item(), 1e-12)


def check_correctness(device, backends, small_px, large_px, weights):
    """Yields a row per backend and TF32 setting as soon as it is measured."""
    x_small, x_large = _image(1, small_px, small_px), _image(1, large_px, large_px, seed=1)
    with torch.inference_mode(), _tf32(False):
        ref = load_model(weights, device, "reference").module(x_small.to(device)).cpu()
        chunked = load_model(weights, device, "chunked").module(x_large.to(device)).cpu()
    for backend in backends:
        for tf32 in (False, True) if device.type == "cuda" else (False,):
            try:
                model = load_model(weights, device, backend)
                with torch.inference_mode(), _tf32(tf32):
                    small = model.module(x_small.to(device)).cpu()
                    large = model.module(x_large.to(device)).cpu()
                a, r = _errors(small, ref)
                a2, r2 = _errors(large, chunked)
                yield (backend, "on" if tf32 else "off", f"{a:.2e}", f"{r:.2e}", f"{a2:.2e}", f"{r2:.2e}")
            except (GmsrError, RuntimeError) as exc:
                yield (backend, "on" if tf32 else "off", f"error: {str(exc).splitlines()[0][:80]}", "", "", "")


def time_network(device, backend, weights, batch, size, repeats):
    model = load_model(weights, device, backend)
    x = _image(batch, size, size).to(device)
    with torch.inference_mode():
        model.module(x)  # warm-up: kernels compiled or loaded
        _sync(device)
        _peak_reset(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.module(x)
            _sync(device)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return median, batch * size * size / median / 1e6, _peak_gib(device)


def check_speed(device, backends, weights, configs, repeats):
    """Yields a row per backend and input as soon as it is measured."""
    for backend in backends:
        for label, batch, size in configs:
            try:
                median, mps, peak = time_network(device, backend, weights, batch, size, repeats)
                yield (backend, label, f"{median * 1000:.1f}", f"{mps:.3g}", "-" if peak is None else f"{peak:.2f}")
            except torch.OutOfMemoryError:
                yield (backend, label, "out of memory", "", "")
            except (GmsrError, RuntimeError) as exc:
                yield (backend, label, f"error: {str(exc).splitlines()[0][:60]}", "", "")
            finally:
                _peak_reset(device)


def check_photo(device, backend, weights, height, width, folder):
    from PIL import Image

    photo = Path(folder) / "photo.png"
    pixels = (_image(1, height, width)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(photo)
    model = load_model(weights, device, backend)
    out = Path(folder) / "cube.h5"
    _peak_reset(device)
    start = time.perf_counter()
    reconstruct_file(photo, out, model=model, overwrite=True)
    total = time.perf_counter() - start
    size_gb = out.stat().st_size / 1e9
    start = time.perf_counter()
    tiled_forward(model.module, pixels, device=model.device, on_rows=lambda y0, block: None)
    _sync(device)
    network = time.perf_counter() - start
    mp = height * width / 1e6
    return (backend, f"{width} x {height}", f"{total:.1f}", f"{mp / total:.3g}", f"{network:.1f}",
            f"{mp / network:.3g}", f"{size_gb:.2f}", "-" if _peak_gib(device) is None else f"{_peak_gib(device):.2f}")


def _header(*names: str) -> str:
    return "| " + " | ".join(names) + " |\n|" + "---|" * len(names)


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--weights", default="gmsr-cave-srgb")
    parser.add_argument("--backends", default=None, help="comma-separated (default: every one usable but reference)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--photo-backends", default=None,
                        help="comma-separated backends for the end-to-end photo (default: the first backend; "
                             "'none' skips it)")
    parser.add_argument("--parts", default="correctness,speed,photo", help="comma-separated: which parts to run")
    parser.add_argument("--name", default="gpu_check.md", help="file name of the table under $OUT")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of this script")
    args = parser.parse_args()
    device = torch.device(args.device)
    backends = (args.backends.split(",") if args.backends else
                [b for b in available_backends(device) if b != "reference"])
    quick = args.quick
    photo_backends = (backends[:1] if args.photo_backends is None else
                      [] if args.photo_backends == "none" else args.photo_backends.split(","))
    system = describe_system()
    gpu = next((d["description"] for d in system["devices"] if d["name"].startswith("cuda")), "no CUDA device")
    out = [f"# gmsr GPU check\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; device {device}: {gpu}; "
           f"torch {system['torch']} (CUDA {system['torch_cuda']}), triton {system['triton']}, "
           f"mamba-ssm {system['mamba_ssm']}; weights {args.weights}; backends {', '.join(backends)}.\n"]

    def emit(text: str) -> None:  # printed at once and kept for $OUT: a run stopped early keeps its rows
        print(text, flush=True)
        out.append(text + "\n")

    emit(out.pop())
    parts = set(args.parts.split(","))
    small, large = (32, 64) if quick else (128, 512)
    if "correctness" in parts:
        emit(f"## Correctness: whole network vs reference ({small} x {small}) and vs chunked ({large} x {large})\n")
        emit(_header("backend", "TF32", "max abs err vs reference", "max rel err", "max abs err vs chunked",
                     "max rel err"))
        for row in check_correctness(device, backends, small, large, args.weights):
            emit(_row(row))
    configs = ([("64 x 64, batch 1", 1, 64), ("2 tiles of 64", 2, 64)] if quick else
               [("512 x 512, batch 1", 1, 512), ("8 tiles of 256 x 256", 8, 256), ("2048 x 2048, one pass", 1, 2048)])
    if "speed" in parts:
        emit("\n## Speed and memory: the network alone\n")
        emit(_header("backend", "input", "median ms", "MP/s", "peak GPU GiB"))
        for row in check_speed(device, backends, args.weights, configs, args.repeats):
            emit(_row(row))
    height, width = (300, 200) if quick else (4000, 6000)
    if "photo" in parts and photo_backends:
        emit(f"\n## A {width} x {height} photo end to end (reconstruct_file to .h5, default tiles)\n")
        emit(_header("backend", "photo", "total s", "MP/s", "network alone s", "MP/s", ".h5 GB", "peak GPU GiB"))
        with tempfile.TemporaryDirectory() as folder:
            for backend in photo_backends:
                try:
                    emit(_row(check_photo(device, backend, args.weights, height, width, folder)))
                except (GmsrError, RuntimeError) as exc:
                    emit(_row((backend, f"error: {str(exc).splitlines()[0][:60]}", "", "", "", "", "", "")))
    where = os.environ.get("OUT")
    if where:
        path = Path(where) / args.name
        path.write_text("".join(out))
        print(f"\n(written to {path})", file=sys.stderr)


if __name__ == "__main__":
    main()
