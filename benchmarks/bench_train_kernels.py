"""Time the SS2D training kernels alone (forward with saved states, backward), one thread, CPU
time per (channel, step); prints numbers.

    python benchmarks/bench_train_kernels.py --size 96 --channels 62
"""

from __future__ import annotations

import argparse
import math
import time

import gmsr_cli  # noqa: F401  (sets OMP_WAIT_POLICY before numba loads)
import numba
import numpy as np

from gmsr_cli.scan.numba_ss2d_train import CHUNK, get_kernel, padded_channels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="image side, pixels")
    parser.add_argument("--channels", type=int, default=62, help="d_inner (padded to whole SIMD lane groups)")
    parser.add_argument("--states", type=int, default=16)
    parser.add_argument("--rank", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    side, n, rank, dp = args.size, args.states, args.rank, padded_channels(args.channels)
    length = side * side
    f32 = np.float32
    xs = rng.standard_normal((1, length, dp)).astype(f32)
    proj = (rng.standard_normal((1, length, 4, rank + 2 * n)) * 0.5).astype(f32)
    a2 = (-np.exp(rng.standard_normal((4, n, dp))) / math.log(2)).astype(f32)
    dt_w = (rng.standard_normal((4, rank, dp)) * 0.5).astype(f32)
    dt_b = (rng.standard_normal((4, dp)) * 0.5 - 2).astype(f32)
    d_skip = rng.standard_normal((4, dp)).astype(f32)
    states = np.zeros((1, 4, math.ceil(length / CHUNK), n, dp), f32)
    dy = rng.standard_normal((1, length, dp)).astype(f32)
    forward, backward = get_kernel("forward", n, rank), get_kernel("backward", n, rank)

    def run_forward():
        forward(xs, proj, a2, dt_w, dt_b, d_skip, side, side, True, states, np.zeros_like(xs))

    def run_backward():
        backward(xs, proj, a2, dt_w, dt_b, d_skip, side, side, states, dy, np.zeros_like(xs), np.zeros_like(proj),
                 np.zeros((1, 4, n + 2 + rank, dp), f32))

    per = 4 * dp * length  # (channel, step) pairs, padded lanes included
    print(f"SS2D training kernels, {side}x{side}, {args.channels} channels ({dp} lanes), N={n}, rank {rank}, 1 thread")
    for name, fn in (("forward", run_forward), ("backward", run_backward)):
        fn()  # compile or load from numba's cache
        best = min(_cpu_seconds(fn) for _ in range(args.repeats))
        print(f"{name:9s} {best * 1e9 / per:6.1f} ns per (channel, step)  ({best * 1e3:.1f} ms)")


def _cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


if __name__ == "__main__":
    main()
