"""The plain sequential selective scan of the spec: the test oracle, kept simple on purpose."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def effective_delta(delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool) -> torch.Tensor:
    """The step sizes the recurrence uses: softplus(delta + delta_bias) (each part optional), float32."""
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[None, :, None]
    return F.softplus(delta) if delta_softplus else delta


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """Mamba-1 selective scan, one step at a time.

    u, delta: (batch, channels, L); A: (channels, N); B, C: (batch, groups, N, L) where channel d
    uses group d // (channels // groups); D, delta_bias: (channels,). Returns y (batch, channels, L)
    in float32. Differentiable through autograd (slowly).
    """
    u = u.float()
    delta = effective_delta(delta, delta_bias, delta_softplus)
    batch, channels, length = u.shape
    groups = B.shape[1]
    B = B.float().repeat_interleave(channels // groups, dim=1)  # (b, g, N, L) -> (b, d, N, L)
    C = C.float().repeat_interleave(channels // groups, dim=1)
    decay = torch.exp(delta.unsqueeze(2) * A.float()[None, :, :, None])  # (b, d, N, L)
    drive = delta.unsqueeze(2) * B * u.unsqueeze(2)  # (b, d, N, L)
    h = u.new_zeros(batch, channels, A.shape[1])
    ys = []
    for step in range(length):
        h = decay[..., step] * h + drive[..., step]
        ys.append((h * C[..., step]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.float()[None, :, None]
    return y
