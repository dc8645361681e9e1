"""GMSR-Net's building blocks: SS2D, the VSS block and the two gradient attentions.

Parameter names follow the published implementation so its checkpoints load key for key.
Two published defects are fixed here (see ../shared/spec/architecture.md): the min-max
normalisations are per sample instead of over the whole batch, and both have an epsilon, so a
constant image gives a finite output.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..scan import SS2DOps, bind_ss2d

_EPS = 1e-8


def _pad_last(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Pad one element at the end of ``dim`` (-1 or -2) by reflection, as published; a size-1
    dimension (an image 2 pixels wide) has nothing to reflect, so it is repeated instead."""
    pad = (0, 1, 0, 0) if dim == -1 else (0, 0, 0, 1)
    mode = "reflect" if t.shape[dim] > 1 else "replicate"
    return F.pad(t, pad, mode=mode)


class SpatialGradientAttention(nn.Module):
    """x * sigmoid(conv7x7([mean_c g, max_c g])) with g the normalised spatial gradients of x.

    g = (raw - lo) / (hi - lo + eps) is a positive affine map per sample, so its channel mean and
    maximum are those of the raw gradients mapped the same way: only two one-channel maps are
    normalised, never the (B, 2c, H, W) gradient stack (the same values, a fraction of the memory).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size=7, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c, H, W) -> (B, c, H, W)
        gx = x[..., :, 1:] - x[..., :, :-1]  # (B, c, H, W-1); padded after the channel reduction
        gy = x[..., 1:, :] - x[..., :-1, :]  # (B, c, H-1, W)
        dims = tuple(range(1, x.dim()))
        lo = torch.minimum(gx.amin(dim=dims, keepdim=True), gy.amin(dim=dims, keepdim=True))
        hi = torch.maximum(gx.amax(dim=dims, keepdim=True), gy.amax(dim=dims, keepdim=True))
        total = _pad_last(gx.sum(dim=1, keepdim=True), -1) + _pad_last(gy.sum(dim=1, keepdim=True), -2)
        peak = torch.maximum(_pad_last(gx.amax(dim=1, keepdim=True), -1), _pad_last(gy.amax(dim=1, keepdim=True), -2))
        pooled = (torch.cat([total / (2 * x.shape[1]), peak], dim=1) - lo) / (hi - lo + _EPS)
        return x * torch.sigmoid(self.conv1(pooled))


class SpectralGradientAttention(nn.Module):
    """x * sigmoid(fc(avg d) + fc(max d)) with d the normalised differences between bands.

    As in the spatial attention, the per-sample normalisation is applied to the pooled values
    (mean and maximum commute with a positive affine map), not to the whole difference tensor.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c, H, W) -> (B, c, H, W)
        d = x[:, 1:] - x[:, :-1]  # (B, c-1, H, W)
        dims = tuple(range(1, d.dim()))
        lo = d.amin(dim=dims, keepdim=True)
        scale = d.amax(dim=dims, keepdim=True) - lo + _EPS

        def pool(p: torch.Tensor) -> torch.Tensor:  # (B, c-1, 1, 1) raw -> (B, c, 1, 1) normalised
            p = (p - lo) / scale
            return torch.cat([p, p[:, -1:]], dim=1)  # the last difference is repeated, as published

        w = self.fc(pool(d.mean(dim=(2, 3), keepdim=True))) + self.fc(pool(d.amax(dim=(2, 3), keepdim=True)))
        # The published code applies a second sigmoid on top of fc's own; kept for weight parity.
        return x * torch.sigmoid(w)


class SS2D(nn.Module):
    """2-D selective scan over four directions (rows, columns, and both reversed).

    The scan backend is bound once, at construction, for ``device`` (``bind_backend``): its fused
    whole-layer operations where it has them for this layer (the numba CPU kernels, the Triton
    kernel), else the per-direction path below with the backend's 1-D scan. The one decision left
    per call is training (gradients) or inference.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 3, expand: int = 2,
                 backend: str = "auto", device: torch.device | str | None = None) -> None:
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        k, d_inner, rank = 4, self.d_inner, self.dt_rank
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner)
        self.x_proj_weight = nn.Parameter(torch.empty(k, rank + 2 * d_state, d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, d_inner, rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, d_inner))
        self.A_logs = nn.Parameter(torch.empty(k * d_inner, d_state))
        self.Ds = nn.Parameter(torch.empty(k * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.reset_scan_parameters()
        self.bind_backend(backend, device)

    def bind_backend(self, backend: str, device: torch.device | str | None = None) -> None:
        """Bind the scan backend ``backend`` (or ``auto``) for ``device`` (None: the CPU)."""
        self._ops: SS2DOps = bind_ss2d(backend, device, self)
        self.backend = self._ops.backend

    def reset_scan_parameters(self) -> None:
        """The published initialisation of the scan parameters (matters only for training)."""
        k, d_inner, rank = 4, self.d_inner, self.dt_rank
        with torch.no_grad():
            bound = 1.0 / math.sqrt(d_inner)  # nn.Linear's default, as published for x_proj
            self.x_proj_weight.uniform_(-bound, bound)
            self.dt_projs_weight.uniform_(-rank ** -0.5, rank ** -0.5)
            dt = torch.exp(torch.rand(k, d_inner) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
            dt = dt.clamp(min=1e-4)
            self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
            self.A_logs.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).repeat(k * d_inner, 1))
            self.Ds.fill_(1.0)

    @staticmethod
    def _to_sequence(x: torch.Tensor, k: int) -> torch.Tensor:
        # (B, d, H, W) -> (B, d, L) in direction k's order.
        b, d, h, w = x.shape
        seq = x.reshape(b, d, h * w) if k % 2 == 0 else x.transpose(2, 3).reshape(b, d, h * w)
        return seq.flip(-1) if k >= 2 else seq

    @staticmethod
    def _from_sequence(y: torch.Tensor, k: int, h: int, w: int) -> torch.Tensor:
        # (B, d, L) in direction k's order -> (B, d, H*W) in row-major pixel order.
        if k >= 2:
            y = y.flip(-1)
        if k % 2 == 1:
            b, d, _ = y.shape
            y = y.reshape(b, d, w, h).transpose(2, 3).reshape(b, d, h * w)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, c) -> (B, H, W, c)
        ops = self._ops
        if torch.is_grad_enabled():
            if ops.training is not None:
                return ops.training(self, x)
        elif ops.inference is not None and x.dtype == self.x_proj_weight.dtype == torch.float32:
            return ops.inference(self, x)
        return self.forward_per_direction(x)

    def forward_per_direction(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, c) -> (B, H, W, c)
        """The published computation: each direction's sequence scanned by the bound 1-D scan
        (any backend, device and dtype; differentiable through autograd)."""
        b, h, w, _ = x.shape
        d_inner = self.d_inner
        xz = self.in_proj(x)
        xc, z = xz[..., :d_inner], xz[..., d_inner:]
        xc = F.silu(self.conv2d(xc.permute(0, 3, 1, 2)))  # (B, d_inner, H, W)
        y = scan_four_directions(xc, self.x_proj_weight, self.dt_projs_weight, self.dt_projs_bias, self.A_logs,
                                 self.Ds, self._ops.scan)
        y = y.transpose(1, 2).reshape(b, h, w, d_inner)
        y = self.out_norm(y) * F.silu(z)
        return self.out_proj(y)


def scan_four_directions(xc: torch.Tensor, x_proj_weight: torch.Tensor, dt_projs_weight: torch.Tensor,
                         dt_projs_bias: torch.Tensor, A_logs: torch.Tensor, Ds: torch.Tensor, scan) -> torch.Tensor:
    """SS2D's scans as published: each direction's sequence (rows, columns, both reversed) through
    the 1-D ``scan`` (common signature, e.g. selective_scan_reference), summed in pixel order.

    xc: (B, d, H, W) after the depthwise conv and SiLU; parameters as named in SS2D. Returns
    (B, d, H * W). Differentiable wherever ``scan`` is; the test oracle of the fused kernels."""
    b, d, h, w = xc.shape
    n, rank = A_logs.shape[1], dt_projs_weight.shape[2]
    A = -torch.exp(A_logs.float())  # (4*d, N)
    y = None
    # One direction at a time: the same arithmetic as one 4-group scan, a quarter of the memory.
    for k in range(4):
        seq = SS2D._to_sequence(xc, k)  # (B, d, L)
        proj = torch.einsum("bdl,cd->bcl", seq, x_proj_weight[k])  # (B, rank + 2N, L)
        dt = torch.einsum("brl,dr->bdl", proj[:, :rank], dt_projs_weight[k])
        Bk = proj[:, rank:rank + n].unsqueeze(1)  # (B, 1, N, L)
        Ck = proj[:, rank + n:].unsqueeze(1)
        part = slice(k * d, (k + 1) * d)
        yk = scan(seq, dt, A[part], Bk, Ck, Ds[part], dt_projs_bias[k], True)
        yk = SS2D._from_sequence(yk, k, h, w)
        y = yk if y is None else y + yk
        del seq, proj, dt, Bk, Ck, yk
    return y


class VSSBlock(nn.Module):
    """LayerNorm then SS2D, channels-first in and out. No residual, as published; the unused
    ``skip_scale`` parameters are kept because published checkpoints carry them."""

    def __init__(self, channels: int, drop_path: float = 0.1, backend: str = "auto",
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.skip_scale = nn.Parameter(torch.ones(channels))
        self.skip_scale2 = nn.Parameter(torch.ones(channels))
        self.ln_1 = nn.LayerNorm(channels)
        self.self_attention = SS2D(channels, backend=backend, device=device)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c, H, W) -> (B, c, H, W)
        y = self.self_attention(self.ln_1(x.permute(0, 2, 3, 1)))  # (B, H, W, c)
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = y.new_empty(y.shape[0], 1, 1, 1).bernoulli_(keep)
            y = y * mask / keep
        return y.permute(0, 3, 1, 2)
