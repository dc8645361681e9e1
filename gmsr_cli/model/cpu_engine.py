"""GMSR-Net's forward pass for inference on the CPU, in numpy and numba alone (no torch).

This is what ``gmsr`` runs on a CPU: built straight from the weights file's arrays, so a
reconstruction never imports PyTorch (a third of a small photo's wall time was ``import torch``),
and what ``GMSRNet.forward`` runs for CPU inference too (its parameters as numpy views), so there
is one CPU inference computation. Training, GPUs and other dtypes take the published path
(``GMSRNet.forward_published``).

It is the published computation rearranged, not changed: every map is channels-last (B, H, W, c),
so 1x1 convolutions are matrix products over contiguous rows, and the fuse convolution is split
by branch, which is the same sum:

    W [vss, x0 * s_pix, x0 * s_ch] = W1 vss + s_pix (W2 x0) + W3 (x0 * s_ch)

with s_pix the spatial attention's per-pixel gate and s_ch the spectral attention's per-channel
gate, so the two attention branches are never made. Their statistics come from one numba pass
(numba_attention.py); SS2D is numba_ss2d_infer.ss2d_infer; the LayerNorm, the 7 x 7 convolution
and the GELU are numba_stage.py. The same numbers as the published computation up to float32
rounding (tests hold them to 1e-5 of the largest value).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..scan.numba_ss2d_infer import LAYER_NORM_EPS, SS2D_PARAMETERS, PreparedSS2D, parameters_key, ss2d_infer
from .matmul import matmul

WIDTHS = (10, 20, 31)  # the stages' channels (the last is the number of bands)
N_BANDS = 31
_EPS = 1e-8  # the attentions' normalisation epsilon (layers._EPS)


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -88 gives 0, as torch's sigmoid
        return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))


def _pad_end(t: np.ndarray, axis: int) -> np.ndarray:
    """Fill the last index of ``axis`` (1: rows, 2: columns) of (B, H, W) as published: the
    reflection of the one before it (the element two before the end), or that element itself
    when it is the only one."""
    n = t.shape[axis]
    last = [slice(None)] * 3
    source = [slice(None)] * 3
    last[axis], source[axis] = n - 1, n - 3 if n > 2 else 0
    t[tuple(last)] = t[tuple(source)]
    return t


class _Stage:
    """One stage's weights: projection, the VSS block (LayerNorm, SS2D), the spectral
    attention's two 1x1 convolutions, and the fuse convolution split into its three branches."""

    def __init__(self, state: Mapping[str, np.ndarray], i: int) -> None:
        project = _f32(state[f"output{i}.weight"])  # (c, c_in, 1, 1)
        c = project.shape[0]
        self.c = c
        self.project_t = _f32(project.reshape(c, -1).T)  # (c_in, c)
        self.ln_w, self.ln_b = _f32(state[f"VSS{i}.ln_1.weight"]), _f32(state[f"VSS{i}.ln_1.bias"])
        self.ss2d = PreparedSS2D({name: state[f"VSS{i}.self_attention.{name}"] for name in SS2D_PARAMETERS})
        self.fc1_t = _f32(np.reshape(state[f"spectral_attention{i}.fc.0.weight"], (c, c)).T)
        self.fc2_t = _f32(np.reshape(state[f"spectral_attention{i}.fc.2.weight"], (c, c)).T)
        fuse = _f32(state[f"conv{i}.0.weight"]).reshape(c, 3 * c)
        self.fuse_t = [_f32(fuse[:, k * c:(k + 1) * c].T) for k in range(3)]  # (c, c) each
        self.fuse_b = _f32(state[f"conv{i}.0.bias"])

    def spectral_fc(self, v: np.ndarray) -> np.ndarray:  # (B, c) -> (B, c): conv, ReLU, conv, sigmoid
        return _sigmoid(np.maximum(v @ self.fc1_t, np.float32(0.0)) @ self.fc2_t)


class CpuEngine:
    """GMSR-Net inference from a state dict of numpy arrays (the weights file's names, as
    ``GMSRNet.state_dict()``): ``engine(rgb)`` maps (B, H, W, 3) float32 in [0, 1] to
    (B, H, W, 31) float32, H, W >= 2. Runs wherever numba does; float32 throughout."""

    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        self.stages = [_Stage(state, i) for i in range(1, len(WIDTHS) + 1)]
        self.spatial_w = _f32(state["spatial_attention.conv1.weight"]).reshape(2, 7, 7)

    def _gates(self, stage: _Stage, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The spatial attention's gate (B, H, W, 1) and the spectral attention's (B, 1, 1, c) of x0."""
        from .numba_attention import gradient_statistics
        from .numba_stage import conv7x7_sigmoid

        b, h, w, c = x0.shape
        sum_x, max_x, sum_y, max_y = (np.empty((b, h, w), np.float32) for _ in range(4))
        grad_range, spec_range = np.empty((b, h, 2), np.float32), np.empty((b, h, 2), np.float32)
        spec_sum, spec_max = np.empty((b, h, c - 1), np.float32), np.empty((b, h, c - 1), np.float32)
        gradient_statistics(x0, sum_x, max_x, sum_y, max_y, grad_range, spec_sum, spec_max, spec_range)
        # Spatial: channel mean and maximum of the gradients, normalised by their range over the sample.
        lo = grad_range[..., 0].min(1).reshape(b, 1, 1)
        hi = grad_range[..., 1].max(1).reshape(b, 1, 1)
        total = _pad_end(sum_x, 2) + _pad_end(sum_y, 1)
        peak = np.maximum(_pad_end(max_x, 2), _pad_end(max_y, 1))
        scale = hi - lo + np.float32(_EPS)
        pooled = np.stack([(total / np.float32(2 * c) - lo) / scale, (peak - lo) / scale], axis=1)  # (B, 2, H, W)
        s_pix = np.empty((b, h, w), np.float32)
        conv7x7_sigmoid(pooled, self.spatial_w, s_pix)
        # Spectral: per-channel mean and maximum of the band differences, normalised the same way.
        d_lo = spec_range[..., 0].min(1).reshape(b, 1)
        d_scale = spec_range[..., 1].max(1).reshape(b, 1) - d_lo + np.float32(_EPS)

        def pool(p: np.ndarray) -> np.ndarray:  # (B, c - 1) raw -> (B, c) normalised
            p = (p - d_lo) / d_scale
            return np.concatenate([p, p[:, -1:]], axis=1)  # the last difference repeated, as published

        mean = spec_sum.astype(np.float64).sum(1).astype(np.float32) / np.float32(h * w)
        gate = stage.spectral_fc(pool(mean)) + stage.spectral_fc(pool(spec_max.max(1)))
        return s_pix.reshape(b, h, w, 1), _sigmoid(gate).reshape(b, 1, 1, c)

    def _stage(self, stage: _Stage, inputs: list[np.ndarray]) -> np.ndarray:
        """One stage; ``inputs`` holds its input, which is released once projected (a 473 x 470
        tile's pass grows the peak memory by about 216 MB: bench_e2e_parts.py stages)."""
        from .numba_stage import fuse_gelu_add_, layer_norm

        x = inputs.pop()
        b, h, w, c_in = x.shape
        c, pixels = stage.c, b * h * w
        x0 = matmul(x.reshape(pixels, c_in), stage.project_t)  # (P, c)
        del x
        normed = np.empty_like(x0)
        layer_norm(x0, stage.ln_w, stage.ln_b, np.float32(LAYER_NORM_EPS), normed)
        v = ss2d_infer(stage.ss2d, normed.reshape(b, h, w, c))
        del normed
        s_pix, s_ch = self._gates(stage, x0.reshape(b, h, w, c))
        z = matmul(v.reshape(pixels, c), stage.fuse_t[0])  # W1 vss
        del v
        spatial = matmul(x0, stage.fuse_t[1])  # W2 x0, gated per pixel in fuse_gelu_add_
        # W3 (x0 s_ch) = (W3 diag(s_ch)) x0: the spectral gate folded into each sample's weights.
        spectral = np.empty_like(x0)
        per_sample = h * w
        for i in range(b):
            rows = slice(i * per_sample, (i + 1) * per_sample)
            matmul(x0[rows], s_ch[i].reshape(c, 1) * stage.fuse_t[2], out=spectral[rows])
        fuse_gelu_add_(z, stage.fuse_b, s_pix.reshape(pixels), spatial, spectral, x0)
        return z.reshape(b, h, w, c)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.ndim != 4 or rgb.shape[3] != 3 or min(rgb.shape[1:3]) < 2:
            raise ValueError(f"the CPU engine needs (B, H, W, 3) with H, W >= 2, got {rgb.shape}")
        maps = [_f32(rgb)]  # each stage pops its input, so that it is freed as early as it can be
        for stage in self.stages:
            maps.append(self._stage(stage, maps))
        return maps.pop()


def supports(net, x) -> bool:
    """Whether ``GMSRNet.forward`` runs ``x`` (a torch tensor) through the CPU engine: no
    gradients, float32 on the CPU, the numba backend's SS2D op in every block, 2 x 2 pixels or more."""
    import torch

    if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32 or min(x.shape[2:]) < 2:
        return False
    blocks = (net.VSS1, net.VSS2, net.VSS3)
    return all(b.self_attention._ops.inference is not None and b.self_attention.backend == "numba"
               and b.self_attention.x_proj_weight.dtype == torch.float32 for b in blocks)


def engine_for(net) -> CpuEngine:
    """The CpuEngine of a GMSRNet (its parameters as numpy arrays), kept on it while they are
    unchanged (an optimiser step, load_state_dict or a move makes a new one)."""
    key = parameters_key(net)
    cached = getattr(net, "_cpu_engine", None)
    if cached is None or cached[0] != key:
        cached = (key, CpuEngine({name: t.detach().numpy() for name, t in net.state_dict().items()}))
        net._cpu_engine = cached
    return cached[1]
