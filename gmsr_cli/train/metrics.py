"""Per-image reconstruction metrics (MRAE, RMSE, PSNR, SAM) in float64, whole or accumulated block by block."""

from __future__ import annotations

import math

import numpy as np

from gmsr_cli.errors import DataError

# MRAE denominator guard, as in the NTIRE spectral reconstruction challenges: |rec - gt| / (gt + 0.001).
MRAE_EPS = 1e-3

# Pixels per internal chunk: bounds the float64 temporaries (~8 MB per array for 31 bands).
_CHUNK_PIXELS = 32768


class MetricAccumulator:
    """Sums over blocks of one image so that result() equals the metrics of the whole image.

    update(rec, gt) takes matching blocks (..., B) (any leading shape, e.g. a row block (h, W, 31));
    result() returns {'mrae', 'rmse', 'psnr', 'sam'} as floats:
      mrae = mean(|rec - gt| / (gt + 0.001)) over every value,
      rmse = sqrt(mean((rec - gt)^2)), psnr = -10 log10(mean((rec - gt)^2)) with peak 1 (inf if exact),
      sam  = mean over pixels of the angle between the rec and gt spectra, in degrees; cosines are
             clipped to [-1, 1]; a pixel where both spectra are zero counts 0 degrees (identical),
             one where only one of them is zero counts 90 degrees (no shared direction).
    """

    def __init__(self) -> None:
        self.abs_rel_sum = 0.0
        self.angle_sum_deg = 0.0
        self.n_values = 0
        self.n_pixels = 0
        self.band_sq_sum: np.ndarray | None = None  # (B,) float64 sums of squared errors, per band

    def update(self, rec, gt) -> None:
        """Add one block: rec and gt (..., B) float arrays of the same shape."""
        rec = np.asarray(rec)
        gt = np.asarray(gt)
        if rec.shape != gt.shape or rec.ndim < 1:
            raise DataError(f"metrics need matching shapes (..., bands), got {rec.shape} and {gt.shape}")
        bands = rec.shape[-1]
        rec = rec.reshape(-1, bands)
        gt = gt.reshape(-1, bands)
        for start in range(0, rec.shape[0], _CHUNK_PIXELS):
            r = rec[start : start + _CHUNK_PIXELS].astype(np.float64)
            g = gt[start : start + _CHUNK_PIXELS].astype(np.float64)
            diff = r - g
            self.abs_rel_sum += float(np.sum(np.abs(diff) / (g + MRAE_EPS)))
            band_sq = np.einsum("nb,nb->b", diff, diff)
            self.band_sq_sum = band_sq if self.band_sq_sum is None else self.band_sq_sum + band_sq
            self.angle_sum_deg += float(np.sum(_spectral_angles_deg(r, g)))
        self.n_values += rec.size
        self.n_pixels += rec.shape[0]

    def result(self) -> dict[str, float]:
        """{'mrae', 'rmse', 'psnr' (dB, peak 1), 'sam' (degrees)} of everything added so far."""
        if self.n_pixels == 0:
            raise DataError("no pixels were added to the metric accumulator")
        mse = float(self.band_sq_sum.sum()) / self.n_values
        return {
            "mrae": self.abs_rel_sum / self.n_values,
            "rmse": math.sqrt(mse),
            "psnr": -10.0 * math.log10(mse) if mse > 0 else math.inf,
            "sam": self.angle_sum_deg / self.n_pixels,
        }

    def band_rmse(self) -> list[float]:
        """RMSE of each band (the last axis) over every pixel added so far."""
        if self.n_pixels == 0:
            raise DataError("no pixels were added to the metric accumulator")
        return [float(v) for v in np.sqrt(self.band_sq_sum / self.n_pixels)]


def _spectral_angles_deg(rec: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, B) float64 pairs -> (N,) angles in degrees, with the zero-vector conventions above."""
    dot = np.einsum("nb,nb->n", rec, gt)
    norm_rec = np.sqrt(np.einsum("nb,nb->n", rec, rec))
    norm_gt = np.sqrt(np.einsum("nb,nb->n", gt, gt))
    denom = norm_rec * norm_gt
    safe = denom > 0
    cos = np.divide(dot, denom, out=np.zeros_like(dot), where=safe)  # one zero vector: cos 0 -> 90 degrees
    angles = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    angles[(norm_rec == 0) & (norm_gt == 0)] = 0.0
    return angles


def compute_metrics(rec, gt) -> dict[str, float]:
    """All four metrics of one image: rec and gt (H, W, B) (or any (..., B)) float arrays."""
    acc = MetricAccumulator()
    acc.update(rec, gt)
    return acc.result()


def mrae(rec, gt) -> float:
    """Mean relative absolute error, mean(|rec - gt| / (gt + 0.001)), over (..., B) arrays."""
    return compute_metrics(rec, gt)["mrae"]


def rmse(rec, gt) -> float:
    """Root mean square error over (..., B) arrays, in the cubes' units (reflectance)."""
    return compute_metrics(rec, gt)["rmse"]


def psnr(rec, gt) -> float:
    """Peak signal-to-noise ratio in dB with peak 1: -10 log10(MSE); inf when rec == gt."""
    return compute_metrics(rec, gt)["psnr"]


def sam(rec, gt) -> float:
    """Mean spectral angle in degrees over the pixels of (..., B) arrays (zero-vector rules: MetricAccumulator)."""
    return compute_metrics(rec, gt)["sam"]
