"""The four-direction scan of SS2D as one fused numba operation, forward and backward.

Where the generic backends need the four scan orders materialised as copies (flips, transposes),
dt = softplus(W_dt @ proj + b) and D * u as separate full-size tensors, and their gradients as
yet more tensors, these kernels walk each direction's pixel order by index arithmetic and do all
of that per step, so a training step moves a fraction of the memory (docs/performance.md).

Shapes (all float32, C-contiguous):
  x     (batch, d, L)            scan input in row-major pixel order, L = H * W
  proj  (batch, 4, L, P)         per direction, in that direction's scan order (see gather_directions):
                                 dt_rank low-rank dt, then B (N), then C (N)
  dt_w  (4, d, R); dt_b (4, d);  A2 (4 * d, N) = A * log2(e);  D (4 * d)
  y     (batch, d, L)            sum over the four directions, back in pixel order
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .numba_cpu import _exp2

_F = np.float32
_LOG2E = _F(1.0 / math.log(2.0))
_LN2 = _F(math.log(2.0))
_THRESHOLD = _F(20.0)  # softplus(x) = x above this, as in PyTorch
CHUNK = 64


@njit(inline="always", fastmath=True)
def _position(k, step, height, width, length):
    """Pixel index (row-major) of step ``step`` of direction k: rows, columns, and both reversed."""
    if k >= 2:
        step = length - 1 - step
    if k % 2 == 0:
        return step
    return (step % height) * width + step // height


@njit(parallel=True, cache=True)
def gather_directions(proj_px, height, width):
    """(batch, L, 4, P) in pixel order -> (batch, 4, L, P) with direction k's rows in its scan order,
    so that the scans read their B, C and dt rows sequentially instead of one cache miss a step."""
    batch, length, _, width_p = proj_px.shape
    out = np.empty((batch, 4, length, width_p), dtype=np.float32)
    for job in prange(batch * 4):
        b = job // 4
        k = job % 4
        for step in range(length):
            out[b, k, step, :] = proj_px[b, _position(k, step, height, width, length), k, :]
    return out


@njit(parallel=True, cache=True)
def scatter_directions(proj_dir, height, width):
    """The inverse of gather_directions: (batch, 4, L, P) in scan orders -> (batch, L, 4, P)."""
    batch, _, length, width_p = proj_dir.shape
    out = np.empty((batch, length, 4, width_p), dtype=np.float32)
    for job in prange(batch * 4):
        b = job // 4
        k = job % 4
        for step in range(length):
            out[b, _position(k, step, height, width, length), k, :] = proj_dir[b, k, step, :]
    return out


@njit(inline="always", fastmath=True)
def _softplus(x):
    """log(1 + e^x) in float32 (relative error ~1e-7), via log1p(z) = 2 atanh(z / (2 + z))."""
    if x > _THRESHOLD:
        return x
    z = _exp2(-abs(x) * _LOG2E)  # in (0, 1]
    s = z / (_F(2.0) + z)  # in (0, 1/3]
    s2 = s * s
    p = _F(1.0 / 13.0)
    p = p * s2 + _F(1.0 / 11.0)
    p = p * s2 + _F(1.0 / 9.0)
    p = p * s2 + _F(1.0 / 7.0)
    p = p * s2 + _F(1.0 / 5.0)
    p = p * s2 + _F(1.0 / 3.0)
    p = p * s2 + _F(1.0)
    return max(x, _F(0.0)) + _F(2.0) * s * p


@njit(inline="always", fastmath=True)
def _chunk_dt(x, proj, dt_w, dt_b, b, k, d, start, steps, height, width, length, pos, us, raw, dts):
    """Fill pos, us, raw (pre-softplus) and dts for the steps [start, start + steps) of direction k."""
    rank = dt_w.shape[2]
    # Column-order directions: one division at the chunk start, then counters (a division per
    # step costs more than the step's whole state update).
    first = length - 1 - start if k >= 2 else start
    row_i = first % height
    col_i = first // height
    for i in range(steps):
        if k % 2 == 0:
            p = first - i if k >= 2 else first + i
        else:
            p = row_i * width + col_i
            if k >= 2:
                row_i -= 1
                if row_i < 0:
                    row_i = height - 1
                    col_i -= 1
            else:
                row_i += 1
                if row_i == height:
                    row_i = 0
                    col_i += 1
        pos[i] = p
        us[i] = x[b, d, p]
        acc = dt_b[k, d]
        for r in range(rank):
            acc += dt_w[k, d, r] * proj[b, k, start + i, r]
        raw[i] = acc
    for i in range(steps):
        dts[i] = _softplus(raw[i])


@njit(parallel=True, fastmath=True, cache=True)
def ss2d_forward(x, proj, dt_w, dt_b, A2, D, height, width, save_states, states):
    """y (batch, d, L); with save_states, states[b, k, c, d, :] = h before chunk c of direction k."""
    batch, d_inner, length = x.shape
    rank = dt_w.shape[2]
    n_state = A2.shape[1]
    y = np.zeros((batch, d_inner, length), dtype=np.float32)
    n_chunks = (length + CHUNK - 1) // CHUNK
    for job in prange(batch * d_inner):
        b = job // d_inner
        d = job % d_inner
        h = np.empty(n_state, dtype=np.float32)
        pos = np.empty(CHUNK, dtype=np.int64)
        us = np.empty(CHUNK, dtype=np.float32)
        raw = np.empty(CHUNK, dtype=np.float32)
        dts = np.empty(CHUNK, dtype=np.float32)
        for k in range(4):
            ch = k * d_inner + d
            a2 = A2[ch]
            dk = D[ch]
            for n in range(n_state):
                h[n] = 0.0
            for c in range(n_chunks):
                start = c * CHUNK
                steps = min(CHUNK, length - start)
                if save_states:
                    for n in range(n_state):
                        states[b, k, c, d, n] = h[n]
                _chunk_dt(x, proj, dt_w, dt_b, b, k, d, start, steps, height, width, length, pos, us, raw, dts)
                for i in range(steps):
                    dt = dts[i]
                    du = dt * us[i]
                    # Slices, not row[rank + n]: an index numba cannot prove non-negative gets a
                    # wrap-around check that stops the loop from vectorising (3x slower).
                    bl = proj[b, k, start + i, rank:rank + n_state]
                    cl = proj[b, k, start + i, rank + n_state:rank + 2 * n_state]
                    acc = _F(0.0)
                    for n in range(n_state):
                        hn = _exp2(dt * a2[n]) * h[n] + du * bl[n]
                        h[n] = hn
                        acc += hn * cl[n]
                    raw[i] = acc + dk * us[i]
                for i in range(steps):
                    y[b, d, pos[i]] += raw[i]
    return y


@njit(parallel=True, fastmath=True, cache=True)
def ss2d_backward(x, proj, dt_w, dt_b, A2, D, height, width, states, dy):
    """Gradients of sum(dy * y) for y = ss2d_forward(...).

    Jobs are (batch, direction), each walking its channels in turn, so that the gradient of the
    shared projections of a direction has one writer. Returns dx_k (batch, 4, d, L) (sum over
    the directions is the caller's), dproj (batch, 4, L, P) in scan orders, and per batch item d dt_w
    (batch, 4, d, R), d dt_b (batch, 4, d), dA (batch, 4 * d, N) for A = A2 ln 2, dD (batch, 4 * d).
    """
    batch, d_inner, length = x.shape
    rank = dt_w.shape[2]
    n_state = A2.shape[1]
    n_chunks = (length + CHUNK - 1) // CHUNK
    dx = np.zeros((batch, 4, d_inner, length), dtype=np.float32)
    dproj = np.zeros(proj.shape, dtype=np.float32)
    d_dtw = np.zeros((batch, 4, d_inner, rank), dtype=np.float32)
    d_dtb = np.zeros((batch, 4, d_inner), dtype=np.float32)
    dA = np.zeros((batch, 4 * d_inner, n_state), dtype=np.float32)
    dD = np.zeros((batch, 4 * d_inner), dtype=np.float32)
    for job in prange(batch * 4):
        b = job // 4
        k = job % 4
        pos = np.empty(CHUNK, dtype=np.int64)
        us = np.empty(CHUNK, dtype=np.float32)
        raw = np.empty(CHUNK, dtype=np.float32)
        dts = np.empty(CHUNK, dtype=np.float32)
        hs = np.empty((CHUNK + 1, n_state), dtype=np.float32)
        dec = np.empty((CHUNK, n_state), dtype=np.float32)
        gs = np.empty((CHUNK, n_state), dtype=np.float32)
        grad = np.empty(n_state, dtype=np.float32)
        a = np.empty(n_state, dtype=np.float32)
        dA_acc = np.empty(n_state, dtype=np.float32)
        for d in range(d_inner):
            ch = k * d_inner + d
            for n in range(n_state):
                a[n] = A2[ch, n] * _LN2
                grad[n] = 0.0
                dA_acc[n] = 0.0
            dD_acc = _F(0.0)
            dtb_acc = _F(0.0)
            for c in range(n_chunks - 1, -1, -1):
                start = c * CHUNK
                steps = min(CHUNK, length - start)
                _chunk_dt(x, proj, dt_w, dt_b, b, k, d, start, steps, height, width, length, pos, us, raw, dts)
                for n in range(n_state):
                    hs[0, n] = states[b, k, c, d, n]
                for i in range(steps):
                    dt = dts[i]
                    du = dt * us[i]
                    bl = proj[b, k, start + i, rank:rank + n_state]
                    a2 = A2[ch]
                    dec_i = dec[i]
                    h_prev = hs[i]
                    h_next = hs[i + 1]
                    for n in range(n_state):
                        e = _exp2(dt * a2[n])
                        dec_i[n] = e
                        h_next[n] = e * h_prev[n] + du * bl[n]
                for i in range(steps - 1, -1, -1):
                    dys = dy[b, d, pos[i]]
                    cl = proj[b, k, start + i, rank + n_state:rank + 2 * n_state]
                    g_i = gs[i]
                    dec_i = dec[i]
                    for n in range(n_state):
                        gn = grad[n] + dys * cl[n]
                        g_i[n] = gn
                        grad[n] = gn * dec_i[n]
                for i in range(steps):
                    p = pos[i]
                    dt = dts[i]
                    u = us[i]
                    dys = dy[b, d, p]
                    row = proj[b, k, start + i]
                    drow = dproj[b, k, start + i]
                    bl = proj[b, k, start + i, rank:rank + n_state]
                    dbl = dproj[b, k, start + i, rank:rank + n_state]
                    dcl = dproj[b, k, start + i, rank + n_state:rank + 2 * n_state]
                    g_i = gs[i]
                    dec_i = dec[i]
                    h_prev = hs[i]
                    h_next = hs[i + 1]
                    dtu = dt * u
                    ddt = _F(0.0)
                    dus = _F(0.0)
                    for n in range(n_state):
                        gn = g_i[n]
                        t = gn * h_prev[n] * dec_i[n]  # dLoss/d(dt * A) through the decay
                        bn = bl[n]
                        ddt += t * a[n] + gn * bn * u
                        dus += gn * bn
                        dA_acc[n] += t * dt
                        dbl[n] += gn * dtu
                        dcl[n] += dys * h_next[n]
                    # softplus'(raw) = sigmoid(raw) = exp(raw - softplus(raw))
                    draw = ddt * _exp2((raw[i] - dt) * _LOG2E)
                    for r in range(rank):
                        drow[r] += draw * dt_w[k, d, r]
                        d_dtw[b, k, d, r] += draw * row[r]
                    dtb_acc += draw
                    dx[b, k, d, p] = dus * dt + D[ch] * dys
                    dD_acc += dys * u
            for n in range(n_state):
                dA[b, ch, n] = dA_acc[n]
            dD[b, ch] = dD_acc
            d_dtb[b, k, d] = dtb_acc
    return dx, dproj, d_dtw, d_dtb, dA, dD
