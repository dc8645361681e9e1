"""The ``numba`` backend's generic selective scan: compiled CPU kernels, forward and exact backward.

This is the 1-D scan of the common signature (``selective_scan_reference``), used where SS2D's
fused four-direction kernels do not apply (float64, more channels than they take) and by
``selective_scan(..., backend="numba")``. Layout the kernels expect (the autograd wrapper below
prepares it):
  u, dt: (batch, channels, L) float32, dt already softplus-ed and biased;
  A2: (channels, N) float32, A * log2(e);
  Bt, Ct: (batch, groups, L, N) float32 (state index last, contiguous for SIMD).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from ..errors import BackendError
from .numba_math import _LN2, _exp2
from .reference import effective_delta

_F = np.float32
_LOG2E = 1.0 / math.log(2.0)
_CHUNK = 64  # steps between saved states for the backward pass


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().contiguous().numpy()


@njit(parallel=True, fastmath=True, cache=True)
def scan_forward(u, dt, A2, Bt, Ct, chunk, states):
    """y[b, d, l] = sum_n C h (no D term). Fills states[b, d, c, :] with h before chunk c's first
    step when ``chunk`` > 0 (for the backward pass); pass chunk=0 and an empty array otherwise."""
    batch, channels, length = u.shape
    groups = Bt.shape[1]
    n_state = A2.shape[1]
    per_group = channels // groups
    y = np.empty((batch, channels, length), dtype=np.float32)
    for job in prange(batch * channels):
        b = job // channels
        d = job % channels
        g = d // per_group
        h = np.zeros(n_state, dtype=np.float32)
        a2 = A2[d]
        for step in range(length):
            if chunk > 0 and step % chunk == 0:
                states[b, d, step // chunk, :] = h
            dts = dt[b, d, step]
            du = dts * u[b, d, step]
            bl = Bt[b, g, step]
            cl = Ct[b, g, step]
            acc = _F(0.0)
            for n in range(n_state):
                hn = _exp2(dts * a2[n]) * h[n] + du * bl[n]
                h[n] = hn
                acc += hn * cl[n]
            y[b, d, step] = acc
    return y


@njit(parallel=True, fastmath=True, cache=True)
def scan_backward(u, dt, A2, Bt, Ct, dy, chunk, states):
    """Gradients of sum(dy * y) for y = scan_forward(...) with respect to u, dt, A, Bt, Ct.

    For each chunk, from the last: (1) run its forward steps again from the saved start state,
    keeping states and decays in small scratch arrays; (2) walk it backwards for dLoss/dh, the
    only truly sequential part; (3) form every gradient from those, step by step independently
    (simple loops that vectorise). Work is split over (batch, group) so that dB and dC of a
    group are written by one thread; dA (for A = A2 ln 2) comes back per batch item.
    """
    batch, channels, length = u.shape
    groups = Bt.shape[1]
    n_state = A2.shape[1]
    per_group = channels // groups
    n_chunks = (length + chunk - 1) // chunk
    du_out = np.zeros((batch, channels, length), dtype=np.float32)
    ddt_out = np.zeros((batch, channels, length), dtype=np.float32)
    dA_out = np.zeros((batch, channels, n_state), dtype=np.float32)
    dB_out = np.zeros((batch, groups, length, n_state), dtype=np.float32)
    dC_out = np.zeros((batch, groups, length, n_state), dtype=np.float32)
    for job in prange(batch * groups):
        b = job // groups
        g = job % groups
        hs = np.empty((chunk + 1, n_state), dtype=np.float32)  # hs[i] = state before step i
        dec = np.empty((chunk, n_state), dtype=np.float32)
        gs = np.empty((chunk, n_state), dtype=np.float32)  # dLoss/dh after step i
        grad = np.empty(n_state, dtype=np.float32)
        dA = np.empty(n_state, dtype=np.float32)
        a = np.empty(n_state, dtype=np.float32)
        for d in range(g * per_group, (g + 1) * per_group):
            for n in range(n_state):
                a[n] = A2[d, n] * _LN2
                grad[n] = 0.0
                dA[n] = 0.0
            for c in range(n_chunks - 1, -1, -1):
                start = c * chunk
                steps = min(chunk, length - start)
                for n in range(n_state):
                    hs[0, n] = states[b, d, c, n]
                for i in range(steps):
                    dts = dt[b, d, start + i]
                    du = dts * u[b, d, start + i]
                    for n in range(n_state):
                        e = _exp2(dts * A2[d, n])
                        dec[i, n] = e
                        hs[i + 1, n] = e * hs[i, n] + du * Bt[b, g, start + i, n]
                for i in range(steps - 1, -1, -1):
                    dys = dy[b, d, start + i]
                    for n in range(n_state):
                        gn = grad[n] + dys * Ct[b, g, start + i, n]
                        gs[i, n] = gn
                        grad[n] = gn * dec[i, n]
                for i in range(steps):
                    step = start + i
                    dts = dt[b, d, step]
                    us = u[b, d, step]
                    dys = dy[b, d, step]
                    dtu = dts * us
                    ddt = _F(0.0)
                    dus = _F(0.0)
                    for n in range(n_state):
                        gn = gs[i, n]
                        t = gn * hs[i, n] * dec[i, n]  # dLoss/d(dt * A) through the decay
                        bn = Bt[b, g, step, n]
                        ddt += t * a[n] + gn * bn * us
                        dus += gn * bn
                        dA[n] += t * dts
                        dB_out[b, g, step, n] += gn * dtu
                        dC_out[b, g, step, n] += dys * hs[i + 1, n]
                    ddt_out[b, d, step] = ddt
                    du_out[b, d, step] = dus * dts
            for n in range(n_state):
                dA_out[b, d, n] = dA[n]
    return du_out, ddt_out, dA_out, dB_out, dC_out


class _NumbaScan(torch.autograd.Function):
    """y = sum_n C h with h the recurrence of the spec; dt given already softplus-ed and biased."""

    @staticmethod
    def forward(ctx, u, dt, A, B, C):
        batch, channels, length = u.shape
        u_np, dt_np = _np(u), _np(dt)
        A2 = (_np(A) * np.float32(_LOG2E)).astype(np.float32)
        Bt = _np(B.transpose(-1, -2))  # (b, g, N, L) -> (b, g, L, N)
        Ct = _np(C.transpose(-1, -2))
        need_grad = any(ctx.needs_input_grad)
        if need_grad:
            states = np.empty((batch, channels, math.ceil(length / _CHUNK), A.shape[1]), dtype=np.float32)
            y = scan_forward(u_np, dt_np, A2, Bt, Ct, _CHUNK, states)
            ctx.saved_arrays = (u_np, dt_np, A2, Bt, Ct, states)
        else:
            y = scan_forward(u_np, dt_np, A2, Bt, Ct, 0, np.empty((1, 1, 1, 1), dtype=np.float32))
        return torch.from_numpy(y)

    @staticmethod
    def backward(ctx, dy):
        u_np, dt_np, A2, Bt, Ct, states = ctx.saved_arrays
        du, ddt, dA, dBt, dCt = scan_backward(u_np, dt_np, A2, Bt, Ct, _np(dy), _CHUNK, states)
        del ctx.saved_arrays
        return (torch.from_numpy(du), torch.from_numpy(ddt), torch.from_numpy(dA.sum(0)),
                torch.from_numpy(dBt).transpose(-1, -2), torch.from_numpy(dCt).transpose(-1, -2))


def selective_scan_numba(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False):
    """The numba backend; same contract as ``selective_scan_reference``; CPU tensors only."""
    if u.device.type != "cpu":
        raise BackendError(f"the 'numba' scan backend needs CPU tensors, got {u.device}; use --backend auto")
    delta = effective_delta(delta, delta_bias, delta_softplus)
    y = _NumbaScan.apply(u.float(), delta, A.float(), B.float(), C.float())
    if D is not None:
        y = y + u.float() * D.float()[None, :, None]
    return y
