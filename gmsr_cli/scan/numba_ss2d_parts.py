"""The element-wise parts of SS2D's numba inference op as in-place numba kernels (no gradients).

SS2D's inference op (``numba_ss2d_infer.ss2d_forward_numba``) runs around the fused scan: the depthwise 3x3
convolution + bias + SiLU, and out_norm(y) * SiLU(z). In PyTorch each of those makes a new
full-size tensor (65 MB at 512x512 for the widest stage), and on this kind of machine filling
fresh pages costs more than the arithmetic; these kernels overwrite their input instead.
All arrays are float32, C-contiguous, channels-last.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .numba_math import FASTMATH, _exp_nonpos

_F = np.float32


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _silu(v):
    """v * sigmoid(v), branch-free (vectorises); relative error ~2e-7."""
    e = _exp_nonpos(-abs(v))
    r = _F(1.0) / (_F(1.0) + e)
    return v * (r if v >= _F(0.0) else e * r)


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def _conv_row(out, above, here, below, weight, bias, width, d):
    # out[j*d + c] = silu(bias + sum of the 3x3 taps); the row buffers carry a zero column on
    # each side, so pixel j's taps are at columns j, j+1, j+2 of them.
    for j in range(width):
        o0, o1, o2 = j * d, (j + 1) * d, (j + 2) * d
        oo = j * d
        for c in range(d):
            acc = bias[c]
            acc += weight[0, c] * above[o0 + c] + weight[1, c] * above[o1 + c] + weight[2, c] * above[o2 + c]
            acc += weight[3, c] * here[o0 + c] + weight[4, c] * here[o1 + c] + weight[5, c] * here[o2 + c]
            acc += weight[6, c] * below[o0 + c] + weight[7, c] * below[o1 + c] + weight[8, c] * below[o2 + c]
            out[oo + c] = _silu(acc)


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def depthwise_conv3x3_silu_(x, weight, bias, n_bands):
    """x <- silu(depthwise_conv3x3(x, zero padding 1) + bias), in place.

    x: (B, H, W * d) float32, the (B, H, W, d) channels-last map with each image row flat;
    weight: (9, d), the 3x3 taps row-major (conv2d.weight (d, 1, 3, 3) reshaped and transposed);
    bias: (d,). Rows are split into ``n_bands`` bands per image, one per job; each job keeps the
    original values of the rows around the one it overwrites, and the rows beside a band's
    edges are saved before any job starts.
    """
    batch, height, row_len = x.shape
    d = bias.shape[0]
    width = row_len // d
    bands = max(1, min(n_bands, height))
    rows_per_band = (height + bands - 1) // bands
    bands = (height + rows_per_band - 1) // rows_per_band
    edges = np.zeros((batch, bands, 2, row_len), dtype=np.float32)  # rows r0 - 1 and r1
    for job in prange(batch * bands):
        b, t = job // bands, job % bands
        r0 = t * rows_per_band
        r1 = min(r0 + rows_per_band, height)
        if r0 > 0:
            edges[b, t, 0, :] = x[b, r0 - 1]
        if r1 < height:
            edges[b, t, 1, :] = x[b, r1]
    for job in prange(batch * bands):
        b, t = job // bands, job % bands
        r0 = t * rows_per_band
        r1 = min(r0 + rows_per_band, height)
        padded = row_len + 2 * d
        rows = np.zeros((3, padded), dtype=np.float32)  # original rows i-1, i, i+1, zero-padded
        above, here, below = 0, 1, 2
        rows[above, d:d + row_len] = edges[b, t, 0]  # zeros above the image
        rows[here, d:d + row_len] = x[b, r0]
        for i in range(r0, r1):
            if i + 1 < r1:
                rows[below, d:d + row_len] = x[b, i + 1]
            else:
                rows[below, d:d + row_len] = edges[b, t, 1]  # zeros below the image
            _conv_row(x[b, i], rows[above], rows[here], rows[below], weight, bias, width, d)
            above, here, below = here, below, above
    return x


@njit(fastmath=True, error_model="numpy", cache=True)
def _mean_and_inverse_std(v, eps):
    # Fast-math (reassociation) here only, so that the two sums vectorise.
    n = v.shape[0]
    s = _F(0.0)
    for c in range(n):
        s += v[c]
    mean = s / _F(n)
    q = _F(0.0)
    for c in range(n):
        q += (v[c] - mean) * (v[c] - mean)
    return mean, _F(1.0) / math.sqrt(q / _F(n) + eps)


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def _norm_gate_row(y, z, gamma, beta, mean, inv):
    for c in range(y.shape[0]):
        y[c] = ((y[c] - mean) * inv * gamma[c] + beta[c]) * _silu(z[c])


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def layer_norm_silu_gate_(y, z, channels, gamma, beta, eps):
    """y[:, :channels] <- LayerNorm(y[:, :channels]) * silu(z[:, :channels]), in place, the norm
    over those channels (biased variance, as torch's LayerNorm); the rest of each row is left.

    y, z: (P, C) float32 (P pixels, C >= channels, padding beyond); gamma, beta: (>= channels,).
    """
    n_pixels = y.shape[0]
    eps32 = _F(eps)
    n_jobs = min(n_pixels, 64)
    per_job = (n_pixels + n_jobs - 1) // n_jobs
    for job in prange(n_jobs):
        for p in range(job * per_job, min(n_pixels, (job + 1) * per_job)):
            row = y[p, :channels]
            mean, inv = _mean_and_inverse_std(row, eps32)
            _norm_gate_row(row, z[p, :channels], gamma, beta, mean, inv)
    return y
