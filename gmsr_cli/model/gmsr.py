"""GMSR-Net (Wang et al., arXiv 2405.07777): three stages of VSS block + gradient attentions."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..scan import resolve_backend
from . import cpu_engine
from .cpu_engine import N_BANDS, WIDTHS  # noqa: F401  (N_BANDS re-exported)
from .layers import SpatialGradientAttention, SpectralGradientAttention, VSSBlock
N_PARAMETERS = 44_980


class GMSRNet(nn.Module):
    """RGB (B, 3, H, W) float32 in [0, 1] -> cube (B, 31, H, W), bands 400..700 nm, H, W >= 2.

    ``backend`` names the selective-scan backend; ``auto`` is resolved once, here, for ``device``
    (None: the CPU), and the model is moved there: build it for the device it will run on.
    """

    def __init__(self, backend: str = "auto", device: torch.device | str | None = None) -> None:
        super().__init__()
        self.backend = resolve_backend(backend, device)
        c1, c2, c3 = WIDTHS
        self.output1 = nn.Conv2d(3, c1, 1, bias=False)
        self.output2 = nn.Conv2d(c1, c2, 1, bias=False)
        self.output3 = nn.Conv2d(c2, c3, 1, bias=False)
        self.VSS1 = VSSBlock(c1, backend=self.backend, device=device)
        self.VSS2 = VSSBlock(c2, backend=self.backend, device=device)
        self.VSS3 = VSSBlock(c3, backend=self.backend, device=device)
        self.spatial_attention = SpatialGradientAttention()  # one module shared by the 3 stages
        self.spectral_attention1 = SpectralGradientAttention(c1)
        self.spectral_attention2 = SpectralGradientAttention(c2)
        self.spectral_attention3 = SpectralGradientAttention(c3)
        self.conv1 = nn.Sequential(nn.Conv2d(3 * c1, c1, 1), nn.GELU())
        self.conv2 = nn.Sequential(nn.Conv2d(3 * c2, c2, 1), nn.GELU())
        self.conv3 = nn.Sequential(nn.Conv2d(3 * c3, c3, 1), nn.GELU())
        if device is not None:
            self.to(device)

    def set_backend(self, backend: str, device: torch.device | str | None = None) -> None:
        """Bind another scan backend (resolved for ``device``, None: the CPU) in every block."""
        self.backend = resolve_backend(backend, device)
        for block in (self.VSS1, self.VSS2, self.VSS3):
            block.self_attention.bind_backend(self.backend, device)

    def _stage(self, x, project, vss, spectral, fuse):
        x0 = project(x)
        branches = torch.cat([vss(x0), self.spatial_attention(x0), spectral(x0)], dim=1)
        return x0 + fuse(branches)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        if rgb.dim() != 4 or rgb.shape[1] != 3 or min(rgb.shape[2:]) < 2:
            raise ValueError(f"GMSRNet needs (B, 3, H, W) with H, W >= 2, got {tuple(rgb.shape)}")
        if cpu_engine.supports(self, rgb):
            # CPU inference: the same numbers through the CPU engine, channels-last (the output is
            # a channels-first view of its (B, H, W, 31) array).
            out = cpu_engine.engine_for(self)(rgb.permute(0, 2, 3, 1).contiguous().numpy())
            return torch.from_numpy(out).permute(0, 3, 1, 2)
        return self.forward_published(rgb)

    def forward_published(self, rgb: torch.Tensor) -> torch.Tensor:
        """The forward pass as published (channels-first stages): training, GPUs, other dtypes."""
        x = self._stage(rgb, self.output1, self.VSS1, self.spectral_attention1, self.conv1)
        x = self._stage(x, self.output2, self.VSS2, self.spectral_attention2, self.conv2)
        return self._stage(x, self.output3, self.VSS3, self.spectral_attention3, self.conv3)
