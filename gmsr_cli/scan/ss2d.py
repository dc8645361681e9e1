"""SS2D's four-direction selective scan as one autograd operation over the fused numba kernels."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import BackendError

_LOG2E = 1.0 / math.log(2.0)


def _lanes(t: torch.Tensor, dp: int) -> np.ndarray:
    """``t`` (..., d) as a C-contiguous float32 array (..., dp), the padding lanes zero."""
    out = torch.zeros(*t.shape[:-1], dp, dtype=torch.float32)
    out[..., :t.shape[-1]] = t.detach()
    return out.numpy()


class _SS2DScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, proj, dt_w, dt_b, A_logs, D, height, width):
        from .ss2d_numba import CHUNK, get_kernel, padded_channels

        batch, d_inner, length = x.shape
        n_state = A_logs.shape[1]
        rank = dt_w.shape[2]
        dp = padded_channels(d_inner)
        A = -torch.exp(A_logs.detach().float())
        arrays = (
            _lanes(x.transpose(1, 2), dp),  # (B, L, dp)
            proj.detach().float().contiguous().numpy(),  # (B, L, 4, P)
            _lanes((A * _LOG2E).reshape(4, d_inner, n_state).transpose(1, 2), dp),  # (4, N, dp)
            _lanes(dt_w.transpose(1, 2), dp),  # (4, R, dp)
            _lanes(dt_b, dp),
            _lanes(D.reshape(4, d_inner), dp),
        )
        save = any(ctx.needs_input_grad)
        shape = (batch, 4, math.ceil(length / CHUNK), n_state, dp) if save else (1, 1, 1, 1, 1)
        states = np.empty(shape, dtype=np.float32)
        y = np.zeros((batch, length, dp), dtype=np.float32)
        get_kernel("forward", n_state, rank)(*arrays, height, width, save, states, y)
        if save:
            ctx.arrays, ctx.states, ctx.A, ctx.hw = arrays, states, A, (height, width)
        return torch.from_numpy(y)[..., :d_inner].transpose(1, 2)

    @staticmethod
    def backward(ctx, dy):
        from .ss2d_numba import get_kernel

        height, width = ctx.hw
        xs, proj = ctx.arrays[:2]
        batch, length, dp = xs.shape
        d_inner = dy.shape[1]
        n_state, rank = ctx.arrays[2].shape[1], ctx.arrays[3].shape[1]
        dx = np.zeros_like(xs)
        dproj = np.zeros_like(proj)
        grads = np.zeros((batch, 4, n_state + 2 + rank, dp), dtype=np.float32)
        get_kernel("backward", n_state, rank)(*ctx.arrays, height, width, ctx.states, _lanes(dy.transpose(1, 2), dp),
                                              dx, dproj, grads)
        del ctx.arrays, ctx.states
        g = torch.from_numpy(grads.sum(0))[..., :d_inner]  # (4, N + 2 + R, d)
        d_A = g[:, :n_state].transpose(1, 2).reshape(4 * d_inner, n_state) * ctx.A
        return (torch.from_numpy(dx)[..., :d_inner].transpose(1, 2), torch.from_numpy(dproj),
                g[:, n_state + 2:].transpose(1, 2), g[:, n_state + 1], d_A, g[:, n_state].reshape(4 * d_inner),
                None, None)


def ss2d_scan_numba(x: torch.Tensor, x_proj_weight: torch.Tensor, dt_projs_weight: torch.Tensor,
                    dt_projs_bias: torch.Tensor, A_logs: torch.Tensor, Ds: torch.Tensor) -> torch.Tensor:
    """The sum over SS2D's four scan directions, in pixel order.

    x: (B, d_inner, H, W) after the depthwise conv and SiLU; the parameters as named in SS2D
    (x_proj_weight (4, R + 2N, d_inner), dt_projs_weight (4, d_inner, R), dt_projs_bias (4, d_inner),
    A_logs (4 d_inner, N), Ds (4 d_inner)). Returns y (B, d_inner, H * W) float32. CPU only;
    differentiable in every argument.
    """
    if x.device.type != "cpu":
        raise BackendError(f"the fused numba SS2D scan needs CPU tensors, got {x.device}; use --backend auto")
    from .ss2d_numba import MAX_LANES, padded_channels

    batch, d_inner, height, width = x.shape
    if padded_channels(d_inner) > MAX_LANES:
        raise BackendError(f"the fused numba SS2D scan takes at most {MAX_LANES} channels, got {d_inner}")
    seq = x.reshape(batch, d_inner, height * width).float()
    proj = torch.einsum("bdl,kcd->blkc", seq, x_proj_weight.float()).contiguous()  # (B, L, 4, R + 2N)
    return _SS2DScan.apply(seq, proj, dt_projs_weight, dt_projs_bias, A_logs, Ds, height, width)
