"""GMSR-Net's forward pass for inference on the CPU: channels-last from end to end.

The published computation (``GMSRNet._stage``) runs each stage channels-first, concatenates its
three branches (B, 3c, H, W) and fuses them with a 1x1 convolution; the VSS block changes layout
twice on the way. Here every map is (B, H, W, c), so that 1x1 convolutions are matrix products
over contiguous rows, and the fuse convolution is split by branch, which is the same sum:

    W [vss, x0 * s_pix, x0 * s_ch] = W1 vss + s_pix (W2 x0) + W3 (x0 * s_ch)

with s_pix the spatial attention's per-pixel gate and s_ch the spectral attention's per-channel
gate, so the two attention branches are never made. Their statistics come from one numba pass
(numba_attention.py). The same numbers as the published computation up to float32 rounding (a
test holds them to 1e-5 of each other); a 473 x 470 tile takes 11% less time and 24% less
working memory (benchmarks/bench_e2e_parts.py stages), and the output is channels-last, as the
tiler blends it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .layers import _EPS


def supports(net, x: torch.Tensor) -> bool:
    """Whether ``forward`` computes ``net`` on ``x``: no gradients, float32 on the CPU, the numba
    SS2D inference op bound in every block, at least 2 x 2 pixels."""
    if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32 or min(x.shape[2:]) < 2:
        return False
    blocks = (net.VSS1, net.VSS2, net.VSS3)
    return all(b.self_attention._ops.inference is not None and b.self_attention.x_proj_weight.dtype == torch.float32
               for b in blocks)


def _pad_end(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Fill the last index of ``dim`` (1: rows, 2: columns) as published: the reflection of the
    one before it (the element two before the end), or that element itself when it is the only one."""
    n = t.shape[dim]
    t.select(dim, n - 1).copy_(t.select(dim, n - 3 if n > 2 else 0))
    return t


def _gates(net, spectral, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The spatial attention's gate (B, H, W, 1) and the spectral attention's (B, 1, 1, c) of x0."""
    from .numba_attention import gradient_statistics

    b, h, w, c = x0.shape
    sum_x, max_x, sum_y, max_y = (torch.empty(b, h, w) for _ in range(4))
    grad_range, spec_range = torch.empty(b, h, 2), torch.empty(b, h, 2)
    spec_sum, spec_max = torch.empty(b, h, c - 1), torch.empty(b, h, c - 1)
    gradient_statistics(x0.numpy(), sum_x.numpy(), max_x.numpy(), sum_y.numpy(), max_y.numpy(), grad_range.numpy(),
                        spec_sum.numpy(), spec_max.numpy(), spec_range.numpy())
    # Spatial: channel mean and maximum of the gradients, normalised by their range over the sample.
    lo = grad_range[..., 0].amin(1).view(b, 1, 1)
    hi = grad_range[..., 1].amax(1).view(b, 1, 1)
    total = _pad_end(sum_x, 2) + _pad_end(sum_y, 1)
    peak = torch.maximum(_pad_end(max_x, 2), _pad_end(max_y, 1))
    scale = hi - lo + _EPS
    pooled = torch.stack([(total / (2 * c) - lo) / scale, (peak - lo) / scale], dim=1)  # (B, 2, H, W)
    s_pix = torch.sigmoid(net.spatial_attention.conv1(pooled)).view(b, h, w, 1)
    # Spectral: per-channel mean and maximum of the band differences, normalised the same way.
    d_lo = spec_range[..., 0].amin(1).view(b, 1)
    d_scale = spec_range[..., 1].amax(1).view(b, 1) - d_lo + _EPS

    def pool(p: torch.Tensor) -> torch.Tensor:  # (B, c - 1) raw -> (B, c, 1, 1) normalised
        p = (p - d_lo) / d_scale
        return torch.cat([p, p[:, -1:]], dim=1).view(b, c, 1, 1)  # the last difference repeated

    mean = spec_sum.double().sum(1).float() / (h * w)
    gate = spectral.fc(pool(mean)) + spectral.fc(pool(spec_max.amax(1)))
    return s_pix, torch.sigmoid(gate).view(b, 1, 1, c)


def _stage(net, x: torch.Tensor, project, vss, spectral, fuse) -> torch.Tensor:
    b, h, w, c_in = x.shape
    c = project.weight.shape[0]
    x0 = torch.mm(x.reshape(-1, c_in), project.weight.view(c, c_in).t()).view(b, h, w, c)
    v = vss.self_attention(vss.ln_1(x0))  # (B, H, W, c)
    s_pix, s_ch = _gates(net, spectral, x0)
    weight = fuse[0].weight.view(c, 3 * c)
    z = torch.addmm(fuse[0].bias, v.reshape(-1, c), weight[:, :c].t()).view(b, h, w, c)
    del v
    z.addcmul_(s_pix, torch.mm(x0.reshape(-1, c), weight[:, c:2 * c].t()).view(b, h, w, c))
    z += torch.mm((x0 * s_ch).reshape(-1, c), weight[:, 2 * c:].t()).view(b, h, w, c)
    out = F.gelu(z)
    out += x0
    return out


def forward(net, rgb: torch.Tensor) -> torch.Tensor:
    """GMSRNet.forward (B, 3, H, W) -> (B, 31, H, W), computed channels-last; the result is a
    channels-first view of a (B, H, W, 31) tensor (``.permute(0, 2, 3, 1)`` gets it back free)."""
    x = rgb.permute(0, 2, 3, 1).contiguous()
    x = _stage(net, x, net.output1, net.VSS1, net.spectral_attention1, net.conv1)
    x = _stage(net, x, net.output2, net.VSS2, net.spectral_attention2, net.conv2)
    x = _stage(net, x, net.output3, net.VSS3, net.spectral_attention3, net.conv3)
    return x.permute(0, 3, 1, 2)
