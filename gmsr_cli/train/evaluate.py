"""Evaluation: reconstruct whole scenes through the same tiled path as `gmsr reconstruct`, score them,
and optionally score the root-polynomial baseline on the same RGB."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import spectra
from ..colour import DEFAULT_EXACT_COLOUR, correct_cube, resolve_exact_colour
from ..errors import DataError
from ..tiling import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX, reconstruct_array
from . import data as train_data
from .baseline import RootPolyBaseline
from .metrics import MetricAccumulator

METRICS = ("mrae", "rmse", "psnr", "sam")


def _mean(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in METRICS}


def _band_rmse_mean(per_scene: list[list[float]]) -> list[float]:
    """Per-band RMSE over all scenes, each scene weighing the same (root of the mean of the MSEs)."""
    return [float(v) for v in np.sqrt(np.mean(np.square(np.asarray(per_scene, dtype=np.float64)), axis=0))]


def fit_baseline(camera: str, data_dir: str | Path | None = None, train_files: Sequence[str] | None = None,
                 seed: int = 0) -> RootPolyBaseline:
    """The root-polynomial baseline fitted on the training scenes (CAVE train split by default)."""
    paths = list(train_files) if train_files else train_data.scene_paths("train", data_dir)
    pairs = (train_data.whole_scene_pair(p, camera) for p in paths)
    return RootPolyBaseline(camera=camera).fit(pairs, seed=seed)


def evaluate(model, scenes: Sequence[str | Path], *, rgb_images: Sequence[str | Path] | None = None,
             camera: str | None = None, tile_px: int = DEFAULT_TILE_PX, overlap_px: int = DEFAULT_OVERLAP_PX,
             batch_tiles: int | None = None, tta: bool = False, baseline: bool = False,
             data_dir: str | Path | None = None, exact_colour: bool | None = DEFAULT_EXACT_COLOUR,
             charts: bool = False, on_scene: Callable[[dict], None] | None = None) -> dict:
    """Score ``model`` (an api.LoadedModel) on whole cubes.

    scenes: cube files (CAVE .h5, or any cube gmsr reads, resampled to 400-700 nm). The RGB input is
    rendered from each cube by ``camera`` (default: the weights' camera) as an 8-bit photo, or read
    from ``rgb_images`` (one per scene, same size). Returns {"scenes": [{"scene", "model": {...},
    "baseline": {...}?}], "mean": {...}, "baseline_mean": {...}?, settings}. Metrics: MRAE, RMSE,
    PSNR (dB, peak 1), SAM (degrees), computed over the whole image. ``exact_colour`` corrects the
    network's cube to the input photo's colour through the weights' camera (as gmsr reconstruct does;
    None: as the weights' card says);
    the baseline is scored as it predicts. The result records the most negative value of the cubes.
    ``charts``: also score both methods on the spectral check charts (train/charts.py) as "charts".
    """
    from ..io import read_rgb

    if rgb_images is not None and len(rgb_images) != len(scenes):
        raise DataError(f"got {len(rgb_images)} RGB images for {len(scenes)} scenes; give one per scene, in order")
    camera = camera or model.camera
    exact_colour = resolve_exact_colour(exact_colour, model)
    fitted = fit_baseline(camera, data_dir) if baseline or charts else None
    rows = []
    for i, scene in enumerate(scenes):
        start = time.perf_counter()
        cube, _ = train_data.load_training_cube(scene)
        if rgb_images is not None:
            rgb = read_rgb(rgb_images[i]).data
            if rgb.shape[:2] != cube.shape[:2]:
                raise DataError(f"{rgb_images[i]}: {rgb.shape[1]}x{rgb.shape[0]} pixels, but the cube {scene} "
                                f"is {cube.shape[1]}x{cube.shape[0]}")
        else:
            rgb, cube = train_data.whole_scene_pair(cube, camera)
        rec = reconstruct_array(model.runner, rgb, tile_px=tile_px, overlap_px=overlap_px,
                                batch_tiles=batch_tiles, device=model.device, tta=tta)
        if exact_colour:
            correct_cube(rec, rgb, model.camera)
        acc = MetricAccumulator()
        acc.update(rec, cube)
        row = {"scene": Path(scene).stem, "model": acc.result(), "model_band_rmse": acc.band_rmse(),
               "min_value": float(rec.min()), "seconds": round(time.perf_counter() - start, 2)}
        if baseline:
            acc = MetricAccumulator()
            acc.update(fitted.predict(rgb), cube)
            row["baseline"] = acc.result()
            row["baseline_band_rmse"] = acc.band_rmse()
        rows.append(row)
        if on_scene is not None:
            on_scene(row)
    if not rows:
        raise DataError("no scenes to evaluate")
    result = {
        "weights": None if model.weights is None else model.weights.name,
        "sha256": None if model.weights is None else model.weights.sha256,
        "camera": camera, "tile_px": tile_px, "overlap_px": overlap_px, "tta": tta, "exact_colour": bool(exact_colour),
        "min_value": min(r["min_value"] for r in rows),
        "rgb": "given images" if rgb_images is not None else f"rendered 8-bit by camera model {camera!r}",
        "scenes": rows, "mean": _mean([r["model"] for r in rows]),
        "wavelengths_nm": [float(w) for w in spectra.WAVELENGTHS_NM],
        "band_rmse": _band_rmse_mean([r["model_band_rmse"] for r in rows]),
    }
    if charts:
        from .charts import evaluate_charts

        result["charts"] = evaluate_charts(model, fitted, camera=camera, exact_colour=exact_colour)
    if baseline:
        result["baseline"] = "root-polynomial degree 2 (linear RGB), least squares on the CAVE training scenes"
        result["baseline_mean"] = _mean([r["baseline"] for r in rows])
        result["baseline_band_rmse"] = _band_rmse_mean([r["baseline_band_rmse"] for r in rows])
    return result
