"""numba kernels for the parts of a GMSR-Net stage around SS2D on the CPU (cpu_engine.py): the
block's LayerNorm, the spatial attention's 7 x 7 convolution with its sigmoid, and the fuse
convolution's GELU with the stage's residual. Float32, C-contiguous, channels-last; in place where
the name ends in ``_``. The same numbers as PyTorch's operations up to float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..scan import numba_math  # noqa: F401  (starts numba's CPU target as gmsr does: scan/numba_start.py)

_F = np.float32
# Fast-math without the no-infinity and no-NaN promises (a sigmoid's exponential may overflow to
# infinity on purpose) and without reassociation (sums keep their order).
FASTMATH = {"nsz", "arcp", "contract", "afn"}


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def layer_norm(x, gamma, beta, eps, out):
    """out[p] = (x[p] - mean) / sqrt(var + eps) * gamma + beta over the last axis of x (P, c), the
    biased variance (as torch's LayerNorm)."""
    n, c = x.shape
    for p in prange(n):
        mean = _F(0.0)
        for k in range(c):
            mean += x[p, k]
        mean /= c
        var = _F(0.0)
        for k in range(c):
            d = x[p, k] - mean
            var += d * d
        inv = _F(1.0) / math.sqrt(var / c + eps)
        for k in range(c):
            out[p, k] = (x[p, k] - mean) * inv * gamma[k] + beta[k]


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def conv7x7_sigmoid(pooled, weight, out):
    """out[b, i, j] = sigmoid(sum over m, u, v of weight[m, u, v] * pooled[b, m, i + u - 3, j + v - 3]),
    zero outside the map: nn.Conv2d(2, 1, 7, padding=3, bias=False) then a sigmoid.
    pooled (B, 2, H, W), weight (2, 7, 7), out (B, H, W)."""
    batch, maps, height, width = pooled.shape
    for job in prange(batch * height):
        b, i = job // height, job % height
        u0, u1 = max(0, 3 - i), min(7, height + 3 - i)
        for j in range(width):
            v0, v1 = max(0, 3 - j), min(7, width + 3 - j)
            s = _F(0.0)
            for m in range(maps):
                for u in range(u0, u1):
                    for v in range(v0, v1):
                        s += weight[m, u, v] * pooled[b, m, i + u - 3, j + v - 3]
            out[b, i, j] = _F(1.0) / (_F(1.0) + math.exp(-s))  # exp(-s) = inf gives 0, as torch


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def gelu_add_(z, x):
    """z <- gelu(z) + x (the exact GELU, 0.5 z (1 + erf(z / sqrt 2))), in place; z, x (P, c)."""
    n, c = z.shape
    r = 1.0 / math.sqrt(2.0)
    for p in prange(n):
        for k in range(c):
            v = z[p, k]
            z[p, k] = _F(0.5 * v * (1.0 + math.erf(v * r))) + x[p, k]
