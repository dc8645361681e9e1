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

from ..scan import get_scan_function

_EPS = 1e-8
_TRAIN_OP_MAX_CHANNELS = 64  # gmsr_cli.scan.ss2d_numba.MAX_LANES (not imported here: numba is optional)


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
    """2-D selective scan over four directions (rows, columns, and both reversed)."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 3, expand: int = 2,
                 backend: str = "auto") -> None:
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        k, d_inner, rank = 4, self.d_inner, self.dt_rank
        self.backend = backend
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
        # Inference on the CPU takes the fused numba path (same numbers, a fraction of the time
        # and memory); training, other devices and dtypes the per-direction autograd path below.
        if (self.backend == "numba" and not torch.is_grad_enabled() and x.device.type == "cpu"
                and x.dtype == torch.float32 and self.x_proj_weight.dtype == torch.float32
                and self.conv2d.kernel_size == (3, 3)):
            return self._forward_fused(x)
        if self.backend == "numba" and x.device.type == "cpu" and self.d_inner <= _TRAIN_OP_MAX_CHANNELS:
            return self._forward_train_fused(x)
        b, h, w, _ = x.shape
        d_inner, n, rank = self.d_inner, self.d_state, self.dt_rank
        xz = self.in_proj(x)
        xc, z = xz[..., :d_inner], xz[..., d_inner:]
        xc = F.silu(self.conv2d(xc.permute(0, 3, 1, 2)))  # (B, d_inner, H, W)
        scan = get_scan_function(self.backend)
        A = -torch.exp(self.A_logs.float())  # (4*d_inner, N)
        y = None
        # One direction at a time: the same arithmetic as one 4-group scan, a quarter of the memory.
        for k in range(4):
            seq = self._to_sequence(xc, k)  # (B, d_inner, L)
            proj = torch.einsum("bdl,cd->bcl", seq, self.x_proj_weight[k])  # (B, rank + 2N, L)
            dt = torch.einsum("brl,dr->bdl", proj[:, :rank], self.dt_projs_weight[k])
            Bk = proj[:, rank:rank + n].unsqueeze(1)  # (B, 1, N, L)
            Ck = proj[:, rank + n:].unsqueeze(1)
            part = slice(k * d_inner, (k + 1) * d_inner)
            yk = scan(seq, dt, A[part], Bk, Ck, self.Ds[part], self.dt_projs_bias[k], True)
            yk = self._from_sequence(yk, k, h, w)
            y = yk if y is None else y + yk
            del seq, proj, dt, Bk, Ck, yk
        y = y.transpose(1, 2).reshape(b, h, w, d_inner)
        y = self.out_norm(y) * F.silu(z)
        return self.out_proj(y)

    def _forward_train_fused(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, c) -> (B, H, W, c)
        """``forward`` with gradients on the CPU: the four directions' scans as one autograd
        operation over numba kernels with an exact backward pass (gmsr_cli/scan/ss2d.py), so a
        training step makes no flipped/transposed copies and no per-direction dt, softplus or
        D u tensors (and none of their gradients)."""
        from ..scan.ss2d import ss2d_scan_numba

        b, h, w, _ = x.shape
        d_inner = self.d_inner
        xz = self.in_proj(x)
        xc, z = xz[..., :d_inner], xz[..., d_inner:]
        xc = F.silu(self.conv2d(xc.permute(0, 3, 1, 2)))  # (B, d_inner, H, W)
        y = ss2d_scan_numba(xc, self.x_proj_weight, self.dt_projs_weight, self.dt_projs_bias, self.A_logs, self.Ds)
        y = y.transpose(1, 2).reshape(b, h, w, d_inner)
        y = self.out_norm(y) * F.silu(z)
        return self.out_proj(y)

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, c) -> (B, H, W, c)
        """``forward`` without gradients on the CPU: the same numbers through numba kernels
        (gmsr_cli/scan/fused.py, ss2d_cpu.py), channels-last throughout, no per-direction
        copies, and three full-size buffers (x, proj, y) instead of a new tensor per operation;
        the output is a view of proj's buffer.
        The inner channels are padded with zero weights to whole SIMD lane groups; the padding
        channels stay exactly 0 all the way and meet zero columns of out_proj."""
        from numba import get_num_threads

        from ..scan.fused import padded_channels, ss2d_scan_fused
        from ..scan.ss2d_cpu import depthwise_conv3x3_silu_, layer_norm_silu_gate_

        b, h, w, c = x.shape
        d, dp, n = self.d_inner, padded_channels(self.d_inner), self.d_state
        pixels = b * h * w

        def pad(t: torch.Tensor, dim: int) -> torch.Tensor:  # zero-pad axis ``dim`` from d to dp
            t = t.detach()
            shape = list(t.shape)
            shape[dim] = dp - d
            return torch.cat([t, t.new_zeros(shape)], dim=dim) if dp > d else t.contiguous()

        x2 = x.reshape(pixels, c)
        w_in = self.in_proj.weight.detach()
        xs = torch.mm(x2, pad(w_in[:d], 0).t())  # (B*H*W, dp): x half of in_proj
        taps = pad(self.conv2d.weight.reshape(d, 9), 0).t().contiguous()  # (9, dp)
        depthwise_conv3x3_silu_(xs.numpy().reshape(b, h, w * dp), taps.numpy(),
                                pad(self.conv2d.bias, 0).numpy(), 2 * get_num_threads())
        x_proj = pad(self.x_proj_weight, 2)  # (4, rank + 2N, dp)
        a2 = pad((-torch.exp(self.A_logs.detach()) * (1.0 / math.log(2.0))).view(4, d, n), 1).numpy()
        dt_w, dt_b = pad(self.dt_projs_weight, 1).numpy(), pad(self.dt_projs_bias, 1).numpy()
        skip = pad(self.Ds.view(4, d), 1).numpy()
        n_proj = x_proj.shape[1]  # rank + 2N: dt, B, C
        buffer = torch.empty(pixels * max(n_proj, c))  # proj for each direction, then the output
        proj = buffer[:pixels * n_proj].view(pixels, n_proj)
        y = torch.zeros(pixels, dp)
        xs3, proj3, y3 = (t.numpy().reshape(b, h * w, -1) for t in (xs, proj, y))
        for k in range(4):
            torch.mm(xs, x_proj[k].t(), out=proj)  # (B*H*W, rank + 2N): dt, B, C per pixel
            ss2d_scan_fused(xs3, proj3, dt_w[k], dt_b[k], a2[k], skip[k], h, w, k, y3)
        del proj, proj3
        z = torch.mm(x2, pad(w_in[d:], 0).t(), out=xs)  # z half of in_proj, into x's buffer
        layer_norm_silu_gate_(y.numpy(), z.numpy(), d, pad(self.out_norm.weight, 0).numpy(),
                              pad(self.out_norm.bias, 0).numpy(), self.out_norm.eps)
        # The output goes into proj's buffer: new pages cost more than the matmul here (glibc
        # maps every block over 32 MB afresh, and each 4 KB page faults on first touch).
        out = buffer[:pixels * c].view(pixels, c)
        return torch.mm(y, pad(self.out_proj.weight, 1).t(), out=out).view(b, h, w, c)


class VSSBlock(nn.Module):
    """LayerNorm then SS2D, channels-first in and out. No residual, as published; the unused
    ``skip_scale`` parameters are kept because published checkpoints carry them."""

    def __init__(self, channels: int, drop_path: float = 0.1, backend: str = "auto") -> None:
        super().__init__()
        self.skip_scale = nn.Parameter(torch.ones(channels))
        self.skip_scale2 = nn.Parameter(torch.ones(channels))
        self.ln_1 = nn.LayerNorm(channels)
        self.self_attention = SS2D(channels, backend=backend)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c, H, W) -> (B, c, H, W)
        y = self.self_attention(self.ln_1(x.permute(0, 2, 3, 1)))  # (B, H, W, c)
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = y.new_empty(y.shape[0], 1, 1, 1).bernoulli_(keep)
            y = y * mask / keep
        return y.permute(0, 3, 1, 2)
