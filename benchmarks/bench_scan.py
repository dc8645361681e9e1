"""Speed of the selective scan alone, for every scan backend available here, at SS2D's shapes.

    python benchmarks/bench_scan.py [--sizes 64,128,256,512] [--backends numba,chunked,...]
                                    [--channels 62] [--repeats 5] [--backward] [--threads N]

One scan as SS2D runs it per direction: u and delta (1, channels, L) with L = S * S for each S
in --sizes, N = 16 states, one group of B and C (1, 1, 16, L), D, delta_bias, softplus. The
default of 62 channels is the widest GMSR-Net stage (d_inner of c = 31). Besides the backends of
``selective_scan`` (reference, chunked, numba on the CPU; chunked, mamba on CUDA), the CPU list
has ``fused``: the kernel of SS2D's CPU inference path (gmsr_cli/scan/numba_ss2d_infer.py) for one
direction, which also computes delta from a rank-2 projection and walks the image in place,
so it does slightly more work per step than the others. Printed: the median and best time,
nanoseconds per (channel, step) and million (channel, step) per second. --backward times
forward + backward for the differentiable backends instead. The reference backend, a Python loop
over the steps, runs only up to L = 16384 (128 x 128), and a size whose time, scaled from the
previous size, would exceed --budget seconds per run is skipped. Numbers, not a test.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

REFERENCE_MAX_LENGTH = 128 * 128
N_STATE = 16


def make_inputs(channels: int, length: int, device, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    u = torch.randn(1, channels, length, generator=g)
    delta = torch.randn(1, channels, length, generator=g) - 2  # softplus -> dt ~ 0.1, as trained SS2D
    A = -torch.exp(torch.log(torch.arange(1, N_STATE + 1, dtype=torch.float32)).repeat(channels, 1)
                   + 0.1 * torch.randn(channels, N_STATE, generator=g))
    B = torch.randn(1, 1, N_STATE, length, generator=g)
    C = torch.randn(1, 1, N_STATE, length, generator=g)
    D = torch.randn(channels, generator=g)
    bias = 0.1 * torch.randn(channels, generator=g)
    return [t.to(device) for t in (u, delta, A, B, C, D, bias)]


def fused_runner(channels: int, side: int):
    """One direction of the fused SS2D inference kernel at the same size (delta from a rank-2
    projection of the per-pixel proj array, as SS2D computes it)."""
    import numpy as np

    from gmsr_cli.scan.numba_ss2d_infer import padded_channels, ss2d_scan_direction

    rng = np.random.default_rng(0)
    rank, length, dp = 2, side * side, padded_channels(channels)
    f = np.float32
    xs = np.zeros((1, length, dp), f)
    xs[..., :channels] = rng.standard_normal((1, length, channels), dtype=f)
    proj = rng.standard_normal((1, length, rank + 2 * N_STATE), dtype=f)
    dt_w = np.zeros((dp, rank), f)
    dt_w[:channels] = 0.3 * rng.standard_normal((channels, rank), dtype=f)
    dt_b = np.zeros(dp, f)
    dt_b[:channels] = -2
    a2 = np.zeros((dp, N_STATE), f)
    a2[:channels] = -np.arange(1, N_STATE + 1, dtype=f) / math.log(2.0)
    d_skip = np.ones(dp, f)
    y = np.zeros((1, length, dp), f)

    def run():
        ss2d_scan_direction(xs, proj, dt_w, dt_b, a2, d_skip, side, side, 0, y)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,128,256,512", help="image sides S (L = S * S), comma-separated")
    parser.add_argument("--backends", default=None, help="backends (default: every one available, and fused)")
    parser.add_argument("--channels", type=int, default=62)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    parser.add_argument("--threads", type=int, default=None, help="torch and numba threads")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="skip a size when the previous size's time, scaled by L, says one run takes longer (s)")
    args = parser.parse_args()

    import torch

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from bench_network import print_header

    from gmsr_cli.scan import available_backends, selective_scan

    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            import numba

            numba.set_num_threads(args.threads)
        except ImportError:
            pass
    print_header(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"\nscan: 1 x {args.channels} channels x L steps, N = {N_STATE}, "
          f"{'forward + backward' if args.backward else 'forward'}")
    print(f"{'device':6s} {'backend':9s} {'S':>5s} {'L':>7s} {'median ms':>10s} {'best ms':>9s} "
          f"{'ns/(ch,step)':>12s} {'M/s':>8s}")
    for device in devices:
        names = available_backends(device)
        if device == "cpu" and "numba" in names and not args.backward:
            names = names + ["fused"]
        if args.backends:
            names = [n for n in args.backends.split(",") if n in names]
        for name in names:
            last = None  # (length, median seconds) of the previous size
            for side in sorted(int(s) for s in args.sizes.split(",")):
                length = side * side
                label = f"{device:6s} {name:9s} {side:5d} {length:7d}"
                if name == "reference" and length > REFERENCE_MAX_LENGTH:
                    print(f"{label} {'skipped':>10s}  a Python loop over the steps: L > {REFERENCE_MAX_LENGTH} takes minutes")
                    continue
                if last and last[1] * length / last[0] > args.budget:
                    print(f"{label} {'skipped':>10s}  about {last[1] * length / last[0]:.0f} s per run "
                          f"(scaled from L = {last[0]}) > --budget {args.budget:g} s")
                    continue
                if name == "fused":
                    run = fused_runner(args.channels, side)
                else:
                    inputs = make_inputs(args.channels, length, device)
                    if args.backward:
                        inputs = [t.requires_grad_() for t in inputs]

                    def run(inputs=inputs, name=name):
                        with torch.set_grad_enabled(args.backward):
                            y = selective_scan(*inputs[:6], inputs[6], True, backend=name)
                            if args.backward:
                                y.sum().backward()
                        if device == "cuda":
                            torch.cuda.synchronize()
                run()  # warm-up: compile, caches
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - start)
                median, best = statistics.median(times), min(times)
                last = (length, median)
                work = args.channels * length
                print(f"{label} {median * 1e3:10.2f} {best * 1e3:9.2f} {median / work * 1e9:12.2f} "
                      f"{work / median / 1e6:8.1f}")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
