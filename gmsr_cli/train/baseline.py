"""A per-pixel root-polynomial regression baseline from RGB to 31 bands (Finlayson et al. 2015)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from gmsr_cli import spectra
from gmsr_cli.errors import DataError, WeightsError

# Degree-2 root-polynomial terms of linear RGB. Every term is homogeneous of degree 1
# (sqrt(k r * k g) = k sqrt(r g)) and there is no constant term, so scaling the exposure by k
# scales the predicted spectrum by k: the baseline is exposure-invariant, unlike an ordinary
# polynomial (whose r^2, rg terms scale by k^2) or one with an intercept.
FEATURE_NAMES = ("r", "g", "b", "sqrt(rg)", "sqrt(gb)", "sqrt(rb)")
N_FEATURES = len(FEATURE_NAMES)

BASELINE_FORMAT = "gmsr-rootpoly"
BASELINE_VERSION = 1

_CHUNK_PIXELS = 65536


def root_poly_features(linear: np.ndarray) -> np.ndarray:
    """Linear RGB (..., 3) -> float64 features (..., 6): r, g, b, sqrt(rg), sqrt(gb), sqrt(rb).

    Negative values (none in a real photo) are treated as 0 under the square roots.
    """
    lin = np.asarray(linear, dtype=np.float64)
    r, g, b = lin[..., 0], lin[..., 1], lin[..., 2]
    pos = np.maximum(lin, 0.0)
    pr, pg, pb = pos[..., 0], pos[..., 1], pos[..., 2]
    return np.stack([r, g, b, np.sqrt(pr * pg), np.sqrt(pg * pb), np.sqrt(pr * pb)], axis=-1)


class RootPolyBaseline:
    """RGB photo (H, W, 3) float in [0, 1], encoded by `camera` -> reflectance cube (H, W, 31).

    weights: (6, 31) float64 mapping root_poly_features(linearize(rgb, camera)) to the 31 bands.
    ridge: Tikhonov strength relative to the mean feature energy (0 = plain least squares).
    """

    def __init__(self, camera: str = spectra.DEFAULT_CAMERA, ridge: float = 0.0, weights: np.ndarray | None = None):
        spectra.camera_matrix(camera)  # unknown camera: FormatError now
        self.camera = camera
        self.ridge = float(ridge)
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (N_FEATURES, spectra.N_BANDS):
                raise WeightsError(f"root-polynomial weights must be (6, 31), got {weights.shape}")
        self.weights = weights

    def fit(self, pairs: Iterable, pixels_per_scene: int = 20000, seed: int = 0) -> RootPolyBaseline:
        """Least-squares fit on (rgb (H, W, 3) float in [0, 1], cube (H, W, 31)) pairs; returns self.

        `pixels_per_scene` pixels are drawn per pair without replacement (numpy Generator seeded
        by `seed`); pixels with a saturated channel (rgb >= 1) are left out since clipping breaks
        the RGB-spectrum relation. `pairs` may be a generator, so one scene is in memory at a time.
        """
        rng = np.random.default_rng(seed)
        feats, targets = [], []
        for i, (rgb, cube) in enumerate(pairs):
            rgb = np.asarray(rgb)
            cube = np.asarray(cube)
            if rgb.shape[:-1] != cube.shape[:-1] or rgb.shape[-1] != 3 or cube.shape[-1] != spectra.N_BANDS:
                raise DataError(f"pair {i}: expected rgb (H, W, 3) and cube (H, W, 31), got {rgb.shape} and {cube.shape}")
            rgb = rgb.reshape(-1, 3)
            cube = cube.reshape(-1, spectra.N_BANDS)
            take = rng.choice(rgb.shape[0], size=min(pixels_per_scene, rgb.shape[0]), replace=False)
            take = take[np.all(rgb[take] < 1.0, axis=1)]
            feats.append(root_poly_features(spectra.linearize(rgb[take].astype(np.float64), self.camera)))
            targets.append(cube[take].astype(np.float64))
        if not feats or sum(len(f) for f in feats) < N_FEATURES:
            raise DataError("RootPolyBaseline.fit needs at least 6 unsaturated pixels; got too few pairs/pixels")
        x = np.concatenate(feats)
        y = np.concatenate(targets)
        if self.ridge > 0:
            gram = x.T @ x
            gram += self.ridge * np.trace(gram) / N_FEATURES * np.eye(N_FEATURES)
            self.weights = np.linalg.solve(gram, x.T @ y)
        else:
            self.weights = np.linalg.lstsq(x, y, rcond=None)[0]
        return self

    def _require_fitted(self) -> np.ndarray:
        if self.weights is None:
            raise WeightsError("RootPolyBaseline has no weights: call fit() or load() first")
        return self.weights

    def predict_linear(self, linear: np.ndarray) -> np.ndarray:
        """Linear camera RGB (..., 3) -> reflectance float32 (..., 31); exactly proportional to exposure."""
        weights = self._require_fitted()
        linear = np.asarray(linear)
        flat = linear.reshape(-1, 3)
        out = np.empty((flat.shape[0], spectra.N_BANDS), dtype=np.float32)
        for start in range(0, flat.shape[0], _CHUNK_PIXELS):
            out[start : start + _CHUNK_PIXELS] = root_poly_features(flat[start : start + _CHUNK_PIXELS]) @ weights
        return out.reshape(linear.shape[:-1] + (spectra.N_BANDS,))

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """RGB photo (H, W, 3) (or any (..., 3)) float in [0, 1] -> reflectance float32 (..., 31)."""
        rgb = np.asarray(rgb)
        if rgb.shape[-1:] != (3,):
            raise DataError(f"RootPolyBaseline.predict expects RGB (..., 3), got {rgb.shape}")
        return self.predict_linear(spectra.linearize(rgb, self.camera))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to an .npz file (weights, camera, ridge, feature names, wavelengths)."""
        path = Path(path)
        with path.open("wb") as fh:  # a file handle keeps numpy from appending ".npz"
            np.savez(
                fh,
                format=BASELINE_FORMAT,
                version=BASELINE_VERSION,
                weights=self._require_fitted(),
                camera=self.camera,
                ridge=self.ridge,
                feature_names=np.array(FEATURE_NAMES),
                wavelengths=spectra.WAVELENGTHS_NM,
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> RootPolyBaseline:
        """Read a model written by save(); WeightsError when the file is not one."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                fmt = str(npz["format"]) if "format" in npz.files else None
                if fmt != BASELINE_FORMAT or int(npz["version"]) != BASELINE_VERSION:
                    raise WeightsError(
                        f"{path} is not a root-polynomial baseline (format {fmt!r}); write one with RootPolyBaseline.save"
                    )
                if tuple(str(n) for n in npz["feature_names"]) != FEATURE_NAMES:
                    raise WeightsError(f"{path}: features {list(npz['feature_names'])} differ from {list(FEATURE_NAMES)}")
                return cls(camera=str(npz["camera"]), ridge=float(npz["ridge"]), weights=npz["weights"])
        except (OSError, ValueError, KeyError) as exc:
            raise WeightsError(f"cannot read root-polynomial baseline {path}: {exc}") from exc
