"""Synthetic training scenes: dead-leaves patches of measured reflectances, optional relighting with white balance."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import spectra
from ..errors import DataError
from .data import PatchDataset


def dead_leaves(reflectances: np.ndarray, patch_px: int, rng: np.random.Generator, *,
                max_leaves: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (p, p, 31) float32 reflectance patch of overlapping discs, each one measured spectrum.

    reflectances: (N, 31) measured spectra to draw from. Discs (radii log-uniform in [p/32, p/2],
    drawn until the patch is covered or ``max_leaves``) occlude those drawn before them; each disc's
    spectrum is scaled by a smooth shading field in [0.35, 1] (a random linear ramp across the patch
    times a soft fall-off from the disc's centre) and a mild texture (1 +- 5% noise). Returns
    (cube, labels (p, p) int: the index into ``reflectances`` of each pixel, shading (p, p) float32:
    the factor that scales it), so that cube == reflectances[labels] * shading[..., None].
    """
    p = int(patch_px)
    labels = np.full((p, p), -1, dtype=np.int64)
    shading = np.ones((p, p), dtype=np.float32)
    yy, xx = np.mgrid[0:p, 0:p].astype(np.float32)
    ramp_dir = rng.normal(size=2)
    ramp = (ramp_dir[0] * yy + ramp_dir[1] * xx) / (np.linalg.norm(ramp_dir) * p)  # about [-1, 1]
    ramp = 0.75 + 0.25 * ramp * rng.uniform(0, 1)
    for _ in range(max_leaves):
        if (labels >= 0).all():
            break
        radius = np.exp(rng.uniform(np.log(max(p / 32, 1.0)), np.log(p / 2)))
        cy, cx = rng.uniform(-radius / 2, p + radius / 2, size=2)
        dist = np.hypot(yy - cy, xx - cx)
        inside = dist < radius
        # drawn front to back: a disc only paints pixels no earlier (nearer) disc covers
        new = inside & (labels < 0)
        if not new.any():
            continue
        labels[new] = int(rng.integers(len(reflectances)))
        falloff = 1.0 - rng.uniform(0.0, 0.4) * (dist[new] / radius) ** 2
        shading[new] = falloff
    if (labels < 0).any():  # the background: one more material
        rest = labels < 0
        labels[rest] = int(rng.integers(len(reflectances)))
        shading[rest] = 1.0
    texture = 1.0 + 0.05 * rng.uniform(-1.0, 1.0, size=(p, p))
    shading = np.clip(shading * ramp * texture, 0.35, 1.0).astype(np.float32)
    cube = np.asarray(reflectances, dtype=np.float32)[labels] * shading[..., None]
    return cube, labels, shading


def relit_rgb(reflectance: np.ndarray, illuminant: np.ndarray, camera: str) -> np.ndarray:
    """8-bit float RGB (p, p, 3) of ``reflectance`` (p, p, 31) lit by ``illuminant`` (31,) and white
    balanced by the camera: the camera's linear RGB of the light reflected, divided per channel by
    that of a perfect white under the same light and multiplied by the white's under the flat (E)
    light the reflectance targets assume, then encoded, clipped and quantised as render_rgb_float does.
    A photo under another light, white balanced, maps back to the reflectance itself."""
    matrix = spectra.camera_matrix(camera)
    white_e = matrix.sum(axis=0)
    white_l = np.asarray(illuminant, np.float64) @ matrix
    if np.any(white_l <= 0):
        raise DataError("an illuminant gives a camera channel no light; it cannot be white balanced")
    linear = (np.asarray(reflectance, np.float64) * illuminant) @ matrix * (white_e / white_l)
    encoded = spectra._encode(linear, spectra.camera_kind(camera))  # the camera's own clip + transfer curve
    return (np.rint(encoded * 255.0) / 255.0).astype(np.float32)


class SpectralPatchDataset(PatchDataset):
    """PatchDataset with synthetic patches of measured reflectances mixed in, and optional relighting.

    Each reflectance patch (the main one, and the second of a blend) is, with probability
    ``synthetic_prob``, a dead_leaves patch of ``reflectances`` (N, 31) instead of a crop of the
    training cubes. With probability ``relight_prob`` the RGB of a sample is relit_rgb under one of
    ``illuminants`` (M, 31) drawn uniformly, else rendered as PatchDataset renders. The target is
    always the (gain-scaled) reflectance. Reproducible per (seed, epoch, index) as PatchDataset.
    """

    def __init__(self, sources: Sequence, patch_px: int = 128, *, reflectances: np.ndarray,
                 synthetic_prob: float = 0.5, illuminants: np.ndarray | None = None, relight_prob: float = 0.0,
                 **kwargs):
        super().__init__(sources, patch_px, **kwargs)
        for name, value in (("synthetic_prob", synthetic_prob), ("relight_prob", relight_prob)):
            if not 0.0 <= float(value) <= 1.0:
                raise DataError(f"{name} must lie in [0, 1], got {value}")
        self.reflectances = np.asarray(reflectances, dtype=np.float32)
        if self.reflectances.ndim != 2 or self.reflectances.shape[1] != spectra.N_BANDS or not len(self.reflectances):
            raise DataError(f"reflectances must be (N, 31) with N >= 1, got {self.reflectances.shape}")
        if relight_prob and (illuminants is None or len(illuminants) == 0):
            raise DataError("relight_prob > 0 needs illuminants")
        self.synthetic_prob = float(synthetic_prob)
        self.relight_prob = float(relight_prob)
        self.illuminants = None if illuminants is None else np.asarray(illuminants, dtype=np.float64)

    def _reflectance_patch(self, rng: np.random.Generator) -> np.ndarray:
        if self.synthetic_prob and rng.random() < self.synthetic_prob:
            return dead_leaves(self.reflectances, self.patch_px, rng)[0]
        return super()._reflectance_patch(rng)

    def _render(self, cube: np.ndarray, camera: str, rng: np.random.Generator) -> np.ndarray:
        if self.relight_prob and rng.random() < self.relight_prob:
            return relit_rgb(cube, self.illuminants[int(rng.integers(len(self.illuminants)))], camera)
        return super()._render(cube, camera, rng)


def spectral_dataset(sources: Sequence, patch_px: int, synthetic_prob: float, relight_prob: float,
                     **options) -> SpectralPatchDataset:
    """SpectralPatchDataset over the train part of the measured spectra (train/charts.py: the check
    part never reaches training) and all the measured illuminants; ``options`` go to PatchDataset."""
    from .charts import ILLUMINANT_SETS, load_library, split_reflectances

    library = load_library()
    train, _ = split_reflectances(library)
    illuminants = np.concatenate([library[k] for k in ILLUMINANT_SETS if k in library])
    return SpectralPatchDataset(sources, patch_px, reflectances=np.concatenate(list(train.values())),
                                synthetic_prob=synthetic_prob, illuminants=illuminants, relight_prob=relight_prob,
                                **options)
