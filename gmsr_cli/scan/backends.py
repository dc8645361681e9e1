"""Adapters from the common scan signature to the compiled backends (numba on CPU, mamba on CUDA)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import BackendError
from .reference import effective_delta

_LOG2E = 1.0 / math.log(2.0)
_CHUNK = 64  # steps between saved states for the backward pass


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().contiguous().numpy()


class _NumbaScan(torch.autograd.Function):
    """y = sum_n C h with h the recurrence of the spec; dt given already softplus-ed and biased."""

    @staticmethod
    def forward(ctx, u, dt, A, B, C):
        from .numba_cpu import scan_forward

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
        from .numba_cpu import scan_backward

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


def selective_scan_mamba(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False):
    """mamba-ssm's CUDA kernel; same contract as ``selective_scan_reference``; CUDA tensors only."""
    if u.device.type != "cuda":
        raise BackendError(f"the 'mamba' scan backend needs CUDA tensors, got {u.device}; use --backend auto")
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    return selective_scan_fn(u.float().contiguous(), delta.float().contiguous(), A.float().contiguous(),
                             B.float().contiguous(), C.float().contiguous(),
                             None if D is None else D.float().contiguous(), z=None,
                             delta_bias=None if delta_bias is None else delta_bias.float().contiguous(),
                             delta_softplus=delta_softplus)
