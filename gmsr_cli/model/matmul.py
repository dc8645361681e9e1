"""Matrix products for CPU inference: PyTorch's when it is loaded anyway, else numpy's.

The CPU engine's 1x1 convolutions and projections are skinny products (a million rows, 3-93
columns). Where torch is already imported (the library inside a PyTorch program, large photos in
``gmsr``) its kernels do them in about half of OpenBLAS's time (benchmarks/bench_e2e_parts.py
matmul); a small photo in ``gmsr`` does not import torch at all (about 1 s), and numpy's OpenBLAS
does them. Both give float32 results within rounding of each other.
"""

from __future__ import annotations

import sys

import numpy as np


def matmul(a: np.ndarray, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a (P, K) @ w (K, M) -> (P, M) float32, into ``out`` (C-contiguous) when given."""
    torch = sys.modules.get("torch")
    if torch is None:
        return np.dot(a, w, out=out)
    if out is None:
        out = np.empty((a.shape[0], w.shape[1]), dtype=np.float32)
    torch.mm(torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(w)),
             out=torch.from_numpy(out))
    return out
