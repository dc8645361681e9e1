"""Spectral checks: measured reflectances split by source set; the check part rendered as flat-patch charts
(scored per patch) and as synthetic scenes (scored per pixel)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import spectra
from ..errors import DataError
from .metrics import MetricAccumulator

SPECTRA_ENV = "GMSR_SPECTRA"
SPECTRA_FILE = "spectra_400_700_10nm.npz"

# The fixed split by material group (source set). Check: natural objects, clothes, hair and skin
# (Vrhel 1994, HySpex skin): materials unlike the paints and Munsell chips of the train part. Train:
# the SFU 1995 set, DuPont paints and Munsell chips (Vrhel), less every spectrum within
# DUPLICATE_TOLERANCE of a check spectrum (SFU 1995 contains the Vrhel objects).
CHECK_SETS = ("vrhel_objects", "vrhel_clothes", "vrhel_hair", "hyspex_skin")
TRAIN_SETS = ("sfu_1995", "dupont_paint", "munsell_vrhel")
ILLUMINANT_SETS = ("illuminant_dicarlo_daylight", "illuminant_sfu_illuminants")
DUPLICATE_TOLERANCE = 0.02  # max |difference| over the 31 bands, reflectance

PATCH_PX = 16  # side of a chart patch
MARGIN_PX = 4  # pixels at each patch edge left out of its score (where neighbours bleed in)
CHART_COLUMNS = 16
# Synthetic check scenes: per check set, this many dead-leaves scenes (train/synthetic.py: shaded,
# textured, overlapping discs) of that set's reflectances, the same every time (seeded by set and
# index), so that materials meet at edges and under shading as in a photo, not only as flat patches.
CHECK_SCENES_PER_SET = 4
CHECK_SCENE_PX = 256
CHECK_SCENE_SEED = 13


def spectra_library_path() -> Path:
    """The measured spectra file: $GMSR_SPECTRA, else spectra/spectra_400_700_10nm.npz in the data
    folder (gmsr_cli.datadir: $GMSR_DATA_DIR, or a checkout's ../shared/data)."""
    from ..datadir import data_path

    path, how = data_path(SPECTRA_ENV, f"spectra/{SPECTRA_FILE}")
    if path is None:
        raise DataError(f"the measured spectra are not found: {how}")
    return path


def load_library(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Every set of the spectra file: name -> (N, 31) float32 on 400-700 nm at 10 nm."""
    path = Path(path) if path is not None else spectra_library_path()
    if not path.is_file():
        raise DataError(f"measured spectra not found at {path}: set {SPECTRA_ENV} to the path of {SPECTRA_FILE} "
                        "(shared/data/spectra/ in the gmsr-cli data folder)")
    try:
        with np.load(path) as npz:
            sets = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read measured spectra from {path} ({exc})") from exc
    wavelengths = sets.pop("wavelengths", None)
    if wavelengths is None or not np.allclose(wavelengths, spectra.WAVELENGTHS_NM):
        raise DataError(f"{path}: expected a 'wavelengths' array of 400-700 nm at 10 nm")
    missing = [k for k in (*CHECK_SETS, *TRAIN_SETS) if k not in sets]
    if missing:
        raise DataError(f"{path}: missing the set(s) {', '.join(missing)}")
    return sets


def split_reflectances(library: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(train sets, check sets), name -> (N, 31) float32: the fixed split above, near-duplicates of
    check spectra removed from the train part."""
    check = {k: library[k] for k in CHECK_SETS}
    pooled = np.concatenate(list(check.values()))
    train = {}
    for name in TRAIN_SETS:
        values = library[name]
        nearest = np.abs(values[:, None, :] - pooled[None]).max(axis=-1).min(axis=1)
        train[name] = values[nearest >= DUPLICATE_TOLERANCE]
    return train, check


def chart(reflectances: np.ndarray, patch_px: int = PATCH_PX, columns: int = CHART_COLUMNS) -> np.ndarray:
    """(rows * patch_px, columns * patch_px, 31) float32: one flat square per reflectance (N, 31), row
    by row; cells past the last one are a flat 18% grey."""
    n = len(reflectances)
    rows = -(-n // columns)
    cells = np.full((rows * columns, spectra.N_BANDS), 0.18, dtype=np.float32)
    cells[:n] = reflectances
    grid = cells.reshape(rows, columns, spectra.N_BANDS)
    return np.repeat(np.repeat(grid, patch_px, axis=0), patch_px, axis=1)


def patch_means(cube: np.ndarray, n: int, patch_px: int = PATCH_PX, margin_px: int = MARGIN_PX,
                columns: int = CHART_COLUMNS) -> np.ndarray:
    """(n, 31) float64: each of the first n patches' mean spectrum over its interior (margin left out)."""
    rows = cube.shape[0] // patch_px
    inner = cube.reshape(rows, patch_px, columns, patch_px, -1)[:, margin_px:patch_px - margin_px, :,
                                                                 margin_px:patch_px - margin_px]
    return inner.astype(np.float64).mean(axis=(1, 3)).reshape(rows * columns, -1)[:n]


def check_scene(reflectances: np.ndarray, set_name: str, index: int, size: int = CHECK_SCENE_PX) -> np.ndarray:
    """(size, size, 31) float32: synthetic check scene ``index`` of the check set ``set_name``, dead
    leaves of its ``reflectances`` (train.synthetic.dead_leaves), the same on every call."""
    from .synthetic import dead_leaves

    key = [CHECK_SCENE_SEED, CHECK_SETS.index(set_name), index]
    return dead_leaves(reflectances, size, np.random.default_rng(key))[0]


def patch_scores(estimated: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Mean over patches of the RMSE (reflectance) and SAM (degrees) of (N, 31) spectra against the measured ones."""
    est, ref = np.asarray(estimated, np.float64), np.asarray(measured, np.float64)
    rmse = np.sqrt(np.mean((est - ref) ** 2, axis=1))
    cos = (est * ref).sum(1) / np.maximum(np.linalg.norm(est, axis=1) * np.linalg.norm(ref, axis=1), 1e-12)
    sam = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return {"patch_rmse": float(rmse.mean()), "patch_sam": float(sam.mean()), "patches": int(len(ref))}


def evaluate_charts(model, baseline, *, camera: str | None = None, exact_colour: bool | None = None,
                    library: str | os.PathLike | None = None) -> dict:
    """Score ``model`` (an api.LoadedModel) and a fitted RootPolyBaseline on one chart per check set,
    and on CHECK_SCENES_PER_SET synthetic scenes of each set's reflectances (``check_scene``).

    Each chart and scene is rendered by ``camera`` (default: the weights') as an 8-bit photo,
    reconstructed whole (one tile) and corrected as ``exact_colour`` says (None: the weights'
    default). Returns {"sets": {name: {"model": scores, "baseline": scores}}, "mean": ...,
    "baseline_mean": ..., "scenes": {"sets": {name: {"model": metrics, "baseline": metrics}}, "mean":
    ..., "baseline_mean": ...}}: chart means weigh every check patch the same; scene metrics (MRAE,
    RMSE, PSNR, SAM, as for the validation scenes) pool every pixel of a set's scenes, or of all.
    """
    from ..colour import correct_cube, resolve_exact_colour
    from ..tiling import reconstruct_array

    camera = camera or model.camera
    exact = resolve_exact_colour(exact_colour, model)
    _, check = split_reflectances(load_library(library))
    sets, pooled = {}, {"model": [], "baseline": [], "truth": []}
    for name, refl in check.items():
        scene = chart(refl)
        rgb = spectra.render_rgb_float(scene, camera)
        rec = reconstruct_array(model.runner, rgb, tile_px=0, overlap_px=0, device=model.device)
        if exact:
            correct_cube(rec, rgb, model.camera)
        ours, theirs = patch_means(rec, len(refl)), patch_means(baseline.predict(rgb), len(refl))
        sets[name] = {"model": patch_scores(ours, refl), "baseline": patch_scores(theirs, refl)}
        pooled["model"].append(ours)
        pooled["baseline"].append(theirs)
        pooled["truth"].append(refl)
    truth = np.concatenate(pooled["truth"])
    scenes, everywhere = {}, {"model": MetricAccumulator(), "baseline": MetricAccumulator()}
    for name, refl in check.items():
        per_set = {"model": MetricAccumulator(), "baseline": MetricAccumulator()}
        for index in range(CHECK_SCENES_PER_SET):
            scene = check_scene(refl, name, index)
            rgb = spectra.render_rgb_float(scene, camera)
            rec = reconstruct_array(model.runner, rgb, tile_px=0, overlap_px=0, device=model.device)
            if exact:
                correct_cube(rec, rgb, model.camera)
            for method, estimate in (("model", rec), ("baseline", baseline.predict(rgb))):
                per_set[method].update(estimate, scene)
                everywhere[method].update(estimate, scene)
        scenes[name] = {method: acc.result() for method, acc in per_set.items()}
    return {"split": {"check": list(CHECK_SETS), "train": list(TRAIN_SETS),
                      "duplicate_tolerance": DUPLICATE_TOLERANCE},
            "camera": camera, "exact_colour": exact, "patch_px": PATCH_PX, "margin_px": MARGIN_PX,
            "sets": sets, "mean": patch_scores(np.concatenate(pooled["model"]), truth),
            "baseline_mean": patch_scores(np.concatenate(pooled["baseline"]), truth),
            "scenes": {"per_set": CHECK_SCENES_PER_SET, "px": CHECK_SCENE_PX, "seed": CHECK_SCENE_SEED,
                       "sets": scenes, "mean": everywhere["model"].result(),
                       "baseline_mean": everywhere["baseline"].result()}}
