"""Speed and peak memory of the whole GMSR-Net forward pass, per device, scan backend and size.

    python benchmarks/bench_network.py [--sizes 128,512,1024] [--backends numba,chunked,...]
                                       [--devices cpu,cuda] [--repeats 5] [--threads N] [--tune-malloc]

The network (gmsr_cli.model.gmsr.GMSRNet, random initial weights: speed and memory do not depend
on the values) runs in eval mode under torch.inference_mode on a (1, 3, S, S) image, S from
--sizes. Each configuration runs in a fresh child process: it builds the model, warms up on a
64 x 64 image (numba compiles or loads its cache there), then times --repeats passes at S x S.
Printed per configuration: the median and best wall time, megapixels per second (median), and
the peak memory: on the CPU the child's ru_maxrss (the whole process: Python, torch and numba
take about 0.35 GB of it before any image), on CUDA torch.cuda.max_memory_allocated during the
timed passes. Numbers, not a test: nothing here passes or fails.

Skipped, with the reason printed: the reference backend above 128 x 128 (it steps through the
sequence in Python, one step per pixel, 4 directions x 3 stages: minutes at 512 x 512), and a
configuration whose memory estimate (from the same backend's measured 512 x 512 peak, scaled by
the pixel count) exceeds the memory available now, or whose time, scaled the same way, exceeds
--budget seconds per pass.

--tune-malloc runs the children with glibc's malloc told to keep freed memory (tune_malloc): on a
virtual machine where a page fault costs microseconds, the forward pass spends a large part of
its time faulting in the fresh pages of its 30-70 MB temporaries; this shows how much.
"""

from __future__ import annotations

import argparse

from gmsr_cli.memory import tune_malloc
import json
import os
import platform
import statistics
import subprocess
import sys
import time

REFERENCE_MAX_SIZE = 128


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "?"
    return " ".join(f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl") if f in flags) or "none of avx2/avx512"


def _available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _numba_threading_layer() -> str:
    # Known only once a parallel function has run.
    import numpy as np
    from numba import njit, prange, threading_layer

    @njit(parallel=True)
    def touch(a):
        for i in prange(a.shape[0]):
            a[i] += 1.0

    touch(np.zeros(4))
    return threading_layer()


def print_header(threads: int | None) -> None:
    import numba
    import torch

    from gmsr_cli.scan import available_backends

    print(f"machine  {_cpu_model()}, {os.cpu_count()} logical cores "
          f"({len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'} usable), "
          f"SIMD: {_cpu_flags()}")
    print(f"python   {platform.python_version()}, torch {torch.__version__} "
          f"({threads or torch.get_num_threads()} threads), numba {numba.__version__} "
          f"({threads or numba.config.NUMBA_NUM_THREADS} threads, {_numba_threading_layer()} layer)")
    if torch.cuda.is_available():
        print(f"cuda     {torch.cuda.get_device_name(0)}, torch CUDA {torch.version.cuda}, "
              f"backends {', '.join(available_backends('cuda'))}")
    else:
        print("cuda     not available")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        busy = " (other processes are using the CPU: times will be longer)" if load > 0.5 else ""
        print(f"load     {load:.2f} (1-minute average){busy}")


def run_child(args: argparse.Namespace) -> None:
    """One configuration, in this (fresh) process: prints one JSON line."""
    if args.tune_malloc and not tune_malloc():
        raise SystemExit("--tune-malloc needs glibc")
    import numba
    import torch

    from gmsr_cli.model.gmsr import GMSRNet

    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = GMSRNet(backend=args.backend, device=device).eval()
    image = torch.rand(1, 3, args.size, args.size, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = []
    with torch.inference_mode():
        model(image[..., :64, :64])  # compile / load the numba cache, cuDNN and allocator warm-up
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.max_memory_allocated()
        else:
            base = _peak_rss_bytes()
        for _ in range(args.repeats):
            start = time.perf_counter()
            model(image)
            sync()
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _peak_rss_bytes()
    print(json.dumps({"times": times, "peak_bytes": peak, "base_bytes": base}))


def _peak_rss_bytes() -> int:
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="128,512,1024", help="image sides in pixels, comma-separated")
    parser.add_argument("--backends", default=None, help="scan backends (default: every one available per device)")
    parser.add_argument("--devices", default=None, help="cpu and/or cuda (default: cpu, and cuda if present)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per configuration")
    parser.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: theirs)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="skip a size when the previous size's time, scaled by pixels, says one pass takes longer (s)")
    parser.add_argument("--tune-malloc", action="store_true",
                        help="glibc: large blocks from the heap, freed memory kept (see tune_malloc)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="numba", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=512, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return

    import torch

    from gmsr_cli.scan import available_backends

    print_header(args.threads)
    if args.tune_malloc:
        print("malloc   tuned (--tune-malloc): mmap threshold 1 GB, no trimming")
    sizes = [int(s) for s in args.sizes.split(",")]
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"\n{'device':6s} {'backend':9s} {'size':>9s} {'median s':>9s} {'best s':>8s} {'MP/s':>7s} "
          f"{'peak MB':>8s}  note")
    for device in devices:
        backends = args.backends.split(",") if args.backends else available_backends(device)
        for backend in backends:
            measured: dict[int, tuple[int, int, float]] = {}  # size -> (peak, baseline after warm-up, median s)
            for size in sorted(sizes):
                label = f"{device:6s} {backend:9s} {size:>4d}x{size:<4d}"
                if backend == "reference" and size > REFERENCE_MAX_SIZE:
                    print(f"{label} {'skipped':>9s}  the reference scan is a Python loop, one step per "
                          f"pixel x 4 directions x 3 stages: minutes above {REFERENCE_MAX_SIZE}x{REFERENCE_MAX_SIZE}")
                    continue
                known = [s for s in measured if s < size]
                if known:  # estimates from the largest size measured so far, scaled by pixels
                    ref = max(known)
                    peak, base, seconds = measured[ref]
                    scale = (size / ref) ** 2
                    available = _available_memory_bytes() if device == "cpu" else torch.cuda.mem_get_info()[0]
                    estimate = base + (peak - base) * scale
                    if available is not None and estimate > 0.8 * available:
                        print(f"{label} {'skipped':>9s}  estimated peak {estimate / 2**20:.0f} MB (the {ref}x{ref} "
                              f"activations x pixels) > 80% of the {available / 2**20:.0f} MB available")
                        continue
                    if seconds * scale > args.budget:
                        print(f"{label} {'skipped':>9s}  about {seconds * scale:.0f} s per pass (scaled from "
                              f"{ref}x{ref}) > --budget {args.budget:g} s")
                        continue
                command = [sys.executable, os.path.abspath(__file__), "--child", "--device", device,
                           "--backend", backend, "--size", str(size), "--repeats", str(args.repeats)]
                if args.threads:
                    command += ["--threads", str(args.threads)]
                if args.tune_malloc:
                    command.append("--tune-malloc")
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
                    print(f"{label} {'failed':>9s}  {reason}")
                    continue
                result = json.loads(done.stdout.strip().splitlines()[-1])
                median, best = statistics.median(result["times"]), min(result["times"])
                measured[size] = (result["peak_bytes"], result["base_bytes"], median)
                memory = "ru_maxrss" if device == "cpu" else "max_memory_allocated"
                print(f"{label} {median:9.3f} {best:8.3f} {size * size / 1e6 / median:7.3f} "
                      f"{result['peak_bytes'] / 2**20:8.0f}  {memory}, {len(result['times'])} runs")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
