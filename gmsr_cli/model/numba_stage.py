"""numba kernels for the parts of a GMSR-Net stage around SS2D on the CPU (cpu_engine.py): the
block's LayerNorm, the spatial attention's 7 x 7 convolution with its sigmoid, and the fuse
convolution's branches summed with its GELU and the stage's residual. Float32, C-contiguous,
channels-last; in place where the name ends in ``_``. The exponential and erfc are polynomials
(numba_math._exp_nonpos, Numerical Recipes' erfc) so that the loops vectorise; the results are
PyTorch's within float32 rounding (tests/test_model.py holds them to 2e-6).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# numba_math: its exponential; importing it starts numba's CPU target as gmsr does (scan/numba_start.py).
from ..scan.numba_math import _exp_nonpos

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


# erfc(a), a >= 0, by the Chebyshev fit of Numerical Recipes (erfcc; relative error below 1.2e-7
# everywhere): branch-free, with numba_math's exponential, so that loops over it vectorise (libm's
# erf does not), and accurate in relative terms in the tail, where 1 + erf(x) would cancel.
_ERFC = tuple(_F(c) for c in (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
                                -1.13520398, 1.48851587, -0.82215223, 0.17087277))
_HALF, _ONE, _TWO, _ZERO = _F(0.5), _F(1.0), _F(2.0), _F(0.0)
_RSQRT2 = _F(1.0 / math.sqrt(2.0))


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _erfc_nonneg(a):
    t = _ONE / (_ONE + _HALF * a)
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 = _ERFC
    poly = c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * (c5 + t * (c6 + t * (c7 + t * (c8 + t * c9))))))))
    return t * _exp_nonpos(min(-a * a + poly, _ZERO))


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _sigmoid(s):
    e = _exp_nonpos(-abs(s))  # exp(-|s|) <= 1: no overflow either way
    return _ONE / (_ONE + e) if s >= 0 else e / (_ONE + e)


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def conv7x7_sigmoid(pooled, weight, out):
    """out[b, i, j] = sigmoid(sum over m, u, v of weight[m, u, v] * pooled[b, m, i + u - 3, j + v - 3]),
    zero outside the map: nn.Conv2d(2, 1, 7, padding=3, bias=False) then a sigmoid.
    pooled (B, 2, H, W), weight (2, 7, 7), out (B, H, W). Each row is summed tap by tap along
    the row, so that the inner loops run over contiguous pixels."""
    batch, maps, height, width = pooled.shape
    for job in prange(batch * height):
        b, i = job // height, job % height
        acc = np.zeros(width, dtype=np.float32)
        for m in range(maps):
            for u in range(max(0, 3 - i), min(7, height + 3 - i)):
                row = i + u - 3
                for v in range(7):
                    w = weight[m, u, v]
                    for j in range(max(0, 3 - v), min(width, width + 3 - v)):
                        acc[j] += w * pooled[b, m, row, j + v - 3]
        for j in range(width):
            out[b, i, j] = _sigmoid(acc[j])


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def fuse_gelu_add_(z, bias, s_pix, spatial, spectral, x):
    """z <- gelu(((z + bias) + s_pix * spatial) + spectral) + x, in place: the fuse convolution's
    three branches summed (z = W1 vss, spatial = W2 x0, spectral = W3 (x0 s_ch)), its GELU (exact
    form, 0.5 v (1 + erf(v / sqrt 2)), through erfc) and the stage's residual.
    z, spatial, spectral, x (P, c); bias (c,); s_pix (P,)."""
    n, c = z.shape
    for p in prange(n):
        g = s_pix[p]
        for k in range(c):
            v = ((z[p, k] + bias[k]) + g * spatial[p, k]) + spectral[p, k]
            q = _erfc_nonneg(abs(v) * _RSQRT2)  # 1 + erf(v / sqrt 2) = 2 - q for v >= 0, q below
            z[p, k] = _HALF * v * (_TWO - q if v >= 0 else q) + x[p, k]
