"""Time training steps (forward, backward, AdamW) of GMSR-Net on random patches; prints numbers.

    python benchmarks/bench_train_step.py --patch 96 --batch 8 --repeats 3
    python benchmarks/bench_train_step.py --device cuda --patch 128 --batch 8 --backend triton
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gmsr_cli  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
import torch

from gmsr_cli.model.gmsr import GMSRNet
from gmsr_cli.train.loop import loss_fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"machine  {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, load {os.getloadavg()[0]:.2f}")
    torch.manual_seed(0)
    model = GMSRNet(backend=args.backend, device=device).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(args.batch, 3, args.patch, args.patch, device=device)
    y = torch.rand(args.batch, 31, args.patch, args.patch, device=device)

    def step() -> None:
        loss = loss_fn(model(x), y, 0.1, 0.01)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # compile / warm up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    pixels = args.batch * args.patch * args.patch
    best, median = min(times), sorted(times)[len(times) // 2]
    print(f"device {device}  backend {model.backend}  batch {args.batch} x {args.patch}^2  "
          f"median {median:.4g} s  best {best:.4g} s  "
          f"{median / pixels * 1e6:.1f} us per pixel (median)")


if __name__ == "__main__":
    main()
