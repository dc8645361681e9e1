"""Speed of SS2D's four-direction scan on a CUDA GPU: the Triton kernels against the per-direction path.

    python benchmarks/bench_triton_ss2d.py [--sizes 64,256,512,1024] [--channels 62] [--batch 1]
                                           [--repeats 10] [--chunk N[,N..]] [--block-channels N[,N..]]
                                           [--device cuda|cpu] [--backward]

For each S in --sizes, x is (batch, S, S, channels) (after SS2D's conv + SiLU; 62 channels is the
widest GMSR-Net stage) with random SS2D parameters (N = 16, dt rank 2). Timed, after a warm-up:
``ss2d_scan_triton`` (gmsr_cli/scan/triton_ss2d.py, all four directions, dt and D u in the
kernels), and SS2D.forward's per-direction composition (flip/transpose, projections, dt,
``selective_scan``) through each available CUDA scan backend (mamba if mamba-ssm is installed,
chunked). Printed: median and best milliseconds, nanoseconds per (pixel, channel) for all four
directions, the block sizes the heuristics chose, and the largest difference to the first
composition relative to its largest value. --backward times forward + backward of sum(w * y)
instead (x and the parameters require gradients; the difference column compares x's gradient).
--chunk and --block-channels take comma-separated lists: every pair is timed (a sweep of the
heuristics' choices). Meant for a CUDA GPU; ``--device cpu`` with
TRITON_INTERPRET=1 only checks that the script runs (the interpreter's times mean nothing).
Numbers, not a test.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time


def parameters(channels: int, n_state: int, rank: int, device):
    import torch

    g = torch.Generator().manual_seed(0)
    x_proj = (torch.rand(4, rank + 2 * n_state, channels, generator=g) * 2 - 1) / math.sqrt(channels)
    dt_w = (torch.rand(4, channels, rank, generator=g) * 2 - 1) * rank ** -0.5
    dt = torch.exp(torch.rand(4, channels, generator=g) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
    dt_b = dt + torch.log(-torch.expm1(-dt))
    A_logs = torch.log(torch.arange(1, n_state + 1.0)).repeat(4 * channels, 1)
    Ds = torch.ones(4 * channels)
    return [t.to(device) for t in (x_proj, dt_w, dt_b, A_logs, Ds)]


def composed(backend: str):
    """SS2D.forward's per-direction scan path with ``backend``: x (B, H, W, d) -> (B, H, W, d)."""
    import torch

    from gmsr_cli.model.layers import SS2D
    from gmsr_cli.scan import get_scan_function

    scan = get_scan_function(backend)

    def run(x, x_proj, dt_w, dt_b, A_logs, Ds):
        b, h, w, d = x.shape
        n, rank = A_logs.shape[1], dt_w.shape[2]
        xc = x.permute(0, 3, 1, 2)
        A = -torch.exp(A_logs)
        y = None
        for k in range(4):
            seq = SS2D._to_sequence(xc, k)
            proj = torch.einsum("bdl,cd->bcl", seq, x_proj[k])
            dt = torch.einsum("brl,dr->bdl", proj[:, :rank], dt_w[k])
            part = slice(k * d, (k + 1) * d)
            yk = scan(seq, dt, A[part], proj[:, rank:rank + n].unsqueeze(1), proj[:, rank + n:].unsqueeze(1),
                      Ds[part], dt_b[k], True)
            yk = SS2D._from_sequence(yk, k, h, w)
            y = yk if y is None else y + yk
        return y.transpose(1, 2).reshape(b, h, w, d)

    return run


def _ints(text: str | None) -> list[int]:
    return [int(part) for part in text.split(",")] if text else []


def time_it(fn, repeats: int, device) -> list[float]:
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,256,512,1024")
    parser.add_argument("--channels", type=int, default=62)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--chunk", default=None, help="override the chunk heuristic (comma-separated: a sweep)")
    parser.add_argument("--block-channels", default=None,
                        help="override the channel block heuristic (comma-separated: a sweep)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    parser.add_argument("--compose", default="mamba,chunked",
                        help="backends whose per-direction composition is timed too, where available ('none': none)")
    args = parser.parse_args()

    import torch

    from gmsr_cli.errors import BackendError
    from gmsr_cli.scan import available_backends, triton_ss2d

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: bench_triton_ss2d.py is meant for one (see --device)", file=sys.stderr)
        return 1
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU, Triton interpreter {'on' if triton_ss2d.interpreter_enabled() else 'off'}")
    print(f"# {name}, torch {torch.__version__}, "
          f"triton {triton_ss2d.triton.__version__}, batch {args.batch}, {args.channels} channels, N 16, rank 2")
    params = parameters(args.channels, 16, 2, device)
    backends = [name for name in available_backends(device) if name in args.compose.split(",")]
    print("size       method          median ms   best ms   ns/(px*ch)   chunk  block  max rel diff")
    for side in (int(s) for s in args.sizes.split(",")):
        x = torch.randn(args.batch, side, side, args.channels, device=device)
        length = side * side
        pairs = []
        for block in _ints(args.block_channels) or [triton_ss2d.channel_block(args.channels)]:
            groups = args.batch * math.ceil(args.channels / block)
            for chunk in _ints(args.chunk) or [triton_ss2d.chunk_length(length, groups, device)]:
                pairs.append((chunk, block))
        scans = [(f"compose:{name}", composed(name), None) for name in backends]
        scans += [("triton", lambda *a, c=chunk, b=block: triton_ss2d.ss2d_scan_triton(
            *a, chunk=c, block_channels=b), (chunk, block)) for chunk, block in pairs]
        weight = torch.randn_like(x)
        want = None
        for label, scan, knobs in scans:
            if args.backward:
                leaves = [t.detach().clone().requires_grad_() for t in [x] + params]

                def fn(scan=scan, leaves=leaves):
                    for leaf in leaves:
                        leaf.grad = None
                    (scan(*leaves) * weight).sum().backward()
                    return leaves[0].grad
            else:
                def fn(scan=scan):
                    with torch.inference_mode():
                        return scan(x, *params)
            try:
                y = fn()
                times = time_it(fn, args.repeats, device)
            except BackendError as error:
                print(error, file=sys.stderr)
                return 1
            except torch.cuda.OutOfMemoryError:
                print(f"{side:>4}x{side:<5} {label:<15} out of GPU memory")
                torch.cuda.empty_cache()
                continue
            want = y if want is None else want
            diff = ((y - want).abs().max() / want.abs().max()).item()
            median = statistics.median(times)
            ns = median * 1e9 / (args.batch * length * args.channels)
            extra = f"{knobs[0]:>6} {knobs[1]:>6}" if knobs else " " * 13
            print(f"{side:>4}x{side:<5} {label:<15} {median * 1e3:>9.3f} {min(times) * 1e3:>9.3f} {ns:>12.3f} "
                  f"{extra}  {diff:.2e}")
            del y
    return 0


if __name__ == "__main__":
    sys.exit(main())
