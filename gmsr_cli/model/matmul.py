"""Matrix products for CPU inference: PyTorch's when it is loaded, else numpy's.

The CPU engine's 1x1 convolutions and projections are skinny products (up to a million rows, 3-93
columns). PyTorch's CPU kernels do them faster than numpy's OpenBLAS: the engine's 512 x 512 pass
took 0.74-0.83 s with them against 0.90-0.91 s (benchmarks/bench_e2e_parts.py engine), which does
not pay for importing torch (about 1 s) on a small photo but does on a large one: a 4000 x 3000
photo took 57.5 s with numpy's products against 48.6 s before the engine, when torch did them
(docs/performance.md). So the tiler asks for torch's products from TORCH_PRODUCTS_MIN_PIXELS on
(``prefer_torch_products``), and a process that has torch loaded anyway uses them always. Both
give float32 results within rounding of each other.
"""

from __future__ import annotations

import sys

import numpy as np

# From this many pixels of a photo on, torch's faster products repay its import (about 0.5 s a
# megapixel against about 1 s once): the break-even is near 2 megapixels.
TORCH_PRODUCTS_MIN_PIXELS = 2_000_000


def prefer_torch_products() -> bool:
    """Import torch, if it is installed, so that ``matmul`` uses its kernels; whether it is loaded."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


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
