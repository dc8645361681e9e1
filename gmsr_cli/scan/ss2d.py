"""SS2D's four-direction selective scan as one autograd operation over the fused numba kernels."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import BackendError

_LOG2E = 1.0 / math.log(2.0)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).contiguous().numpy()


class _SS2DScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, proj, dt_w, dt_b, A_logs, D, height, width):
        from .ss2d_numba import CHUNK, gather_directions, ss2d_forward

        batch, d_inner, length = x.shape
        A = -torch.exp(A_logs.detach().float())
        arrays = (_np(x), gather_directions(_np(proj), height, width), _np(dt_w), _np(dt_b), (A.numpy() * np.float32(_LOG2E)).astype(np.float32),
                  _np(D))
        save = any(ctx.needs_input_grad)
        if save:
            states = np.empty((batch, 4, math.ceil(length / CHUNK), d_inner, A.shape[1]), dtype=np.float32)
        else:
            states = np.empty((1, 1, 1, 1, 1), dtype=np.float32)
        y = ss2d_forward(*arrays, height, width, save, states)
        if save:
            ctx.arrays, ctx.states, ctx.A, ctx.hw = arrays, states, A, (height, width)
        return torch.from_numpy(y)

    @staticmethod
    def backward(ctx, dy):
        from .ss2d_numba import scatter_directions, ss2d_backward

        height, width = ctx.hw
        dx, dproj, d_dtw, d_dtb, dA, dD = ss2d_backward(*ctx.arrays, height, width, ctx.states, _np(dy))
        dproj = scatter_directions(dproj, height, width)
        A = ctx.A
        del ctx.arrays, ctx.states
        return (torch.from_numpy(dx.sum(1)), torch.from_numpy(dproj), torch.from_numpy(d_dtw.sum(0)),
                torch.from_numpy(d_dtb.sum(0)), torch.from_numpy(dA.sum(0)) * A, torch.from_numpy(dD.sum(0)),
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
    batch, d_inner, height, width = x.shape
    seq = x.reshape(batch, d_inner, height * width).float()
    proj = torch.einsum("bdl,kcd->blkc", seq, x_proj_weight.float()).contiguous()  # (B, L, 4, R + 2N)
    return _SS2DScan.apply(seq, proj, dt_projs_weight, dt_projs_bias, A_logs, Ds, height, width)
