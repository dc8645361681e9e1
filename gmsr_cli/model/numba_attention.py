"""The statistics both gradient attentions need, in one numba pass over a channels-last map.

The spatial attention needs, per pixel, the sum and the maximum over channels of the horizontal
and vertical differences, and their least and greatest values over the sample; the spectral
attention needs, per channel, the mean and the maximum over pixels of the differences between
neighbouring channels, and their least and greatest values. In PyTorch that is a full-size
difference tensor per direction and a dozen reductions over a channel axis of 10-31 values;
here each pixel is read once and only per-row partial results are written. No gradients;
float32, C-contiguous, channels-last.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..scan.numba_math import FASTMATH

_F = np.float32


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _difference_over_channels(x, b, i, j, di, dj):
    """Sum, maximum and minimum over channels k of x[b, i + di, j + dj, k] - x[b, i, j, k]."""
    s, m, lo = _F(0.0), -np.inf, np.inf
    for k in range(x.shape[3]):
        g = x[b, i + di, j + dj, k] - x[b, i, j, k]
        s += g
        m = max(m, g)
        lo = min(lo, g)
    return s, m, lo


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def gradient_statistics(x, sum_x, max_x, sum_y, max_y, grad_range, spec_sum, spec_max, spec_range):
    """Fill the outputs from x (B, H, W, c), c >= 2, H, W >= 2, for every sample b and row i:

    sum_x[b, i, j], max_x[b, i, j]: sum and maximum over channels of x[b, i, j + 1] - x[b, i, j]
      (j < W - 1; column W - 1 is left as it is);
    sum_y[b, i, j], max_y[b, i, j]: the same of x[b, i + 1, j] - x[b, i, j] (i < H - 1);
    grad_range[b, i]: (least, greatest) of all those differences in row i (both directions);
    spec_sum[b, i, k], spec_max[b, i, k]: sum and maximum over the row's pixels of
      x[b, i, j, k + 1] - x[b, i, j, k] (k < c - 1);
    spec_range[b, i]: (least, greatest) of those channel differences in row i.
    """
    batch, height, width, c = x.shape
    for job in prange(batch * height):
        b, i = job // height, job % height
        g_lo, g_hi = np.inf, -np.inf
        for j in range(width - 1):
            s, m, lo = _difference_over_channels(x, b, i, j, 0, 1)
            sum_x[b, i, j], max_x[b, i, j] = s, m
            g_lo, g_hi = min(g_lo, lo), max(g_hi, m)
        if i + 1 < height:
            for j in range(width):
                s, m, lo = _difference_over_channels(x, b, i, j, 1, 0)
                sum_y[b, i, j], max_y[b, i, j] = s, m
                g_lo, g_hi = min(g_lo, lo), max(g_hi, m)
        grad_range[b, i, 0] = g_lo
        grad_range[b, i, 1] = g_hi
        d_lo, d_hi = np.inf, -np.inf
        for k in range(c - 1):
            spec_sum[b, i, k] = _F(0.0)
            spec_max[b, i, k] = -np.inf
        for j in range(width):
            for k in range(c - 1):
                d = x[b, i, j, k + 1] - x[b, i, j, k]
                spec_sum[b, i, k] += d
                spec_max[b, i, k] = max(spec_max[b, i, k], d)
                d_lo = min(d_lo, d)
        for k in range(c - 1):
            d_hi = max(d_hi, spec_max[b, i, k])
        spec_range[b, i, 0] = d_lo
        spec_range[b, i, 1] = d_hi
