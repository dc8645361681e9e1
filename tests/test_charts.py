"""Spectral check charts: the fixed split of the measured spectra, the chart layout, and scoring through the API."""

import numpy as np
import pytest

from gmsr_cli import api
from gmsr_cli.spectra import render_rgb_float
from gmsr_cli.train import charts
from gmsr_cli.train.baseline import RootPolyBaseline


@pytest.fixture(scope="module")
def library(shared_dir):
    return charts.load_library(shared_dir / "data" / "spectra" / charts.SPECTRA_FILE)


def test_split_keeps_check_materials_out_of_the_train_part(library):
    train, check = charts.split_reflectances(library)
    assert list(check) == list(charts.CHECK_SETS) and list(train) == list(charts.TRAIN_SETS)
    pooled_check = np.concatenate(list(check.values()))
    pooled_train = np.concatenate(list(train.values()))
    nearest = np.abs(pooled_train[:, None, :] - pooled_check[None]).max(axis=-1).min(axis=1)
    assert nearest.min() >= charts.DUPLICATE_TOLERANCE
    # SFU 1995 holds the Vrhel objects: those are what the tolerance removes, not the bulk of the set
    assert 1700 < len(train["sfu_1995"]) < len(library["sfu_1995"])
    assert len(pooled_check) == sum(len(library[k]) for k in charts.CHECK_SETS)


def test_chart_patches_are_flat_and_read_back_exactly():
    rng = np.random.default_rng(0)
    refl = rng.uniform(0, 1, (21, 31)).astype(np.float32)  # 2 rows of 16, the rest grey
    scene = charts.chart(refl)
    assert scene.shape == (2 * charts.PATCH_PX, charts.CHART_COLUMNS * charts.PATCH_PX, 31)
    np.testing.assert_allclose(charts.patch_means(scene, 21), refl, atol=1e-6)
    assert np.all(scene[-1, -1] == np.float32(0.18))
    # the patch edges do not count: spoiling them leaves the scores as they were
    spoiled = scene.copy()
    spoiled[:, :: charts.PATCH_PX] = 5.0
    np.testing.assert_allclose(charts.patch_means(spoiled, 21), refl, atol=1e-6)


def test_patch_scores():
    ref = np.array([[0.2] * 31, np.linspace(0.1, 0.8, 31)])
    assert charts.patch_scores(ref, ref) == {"patch_rmse": 0.0, "patch_sam": pytest.approx(0.0, abs=1e-5),
                                             "patches": 2}
    scaled = charts.patch_scores(2 * ref, ref)  # brighter: same angle, an RMSE of the spectra's RMS
    assert scaled["patch_sam"] == pytest.approx(0.0, abs=1e-5)
    assert scaled["patch_rmse"] == pytest.approx(np.sqrt((ref ** 2).mean(axis=1)).mean())


def test_check_scenes_are_fixed_shaded_mosaics_of_their_own_set(library):
    _, check = charts.split_reflectances(library)
    refl = check["vrhel_clothes"]
    scene = charts.check_scene(refl, "vrhel_clothes", 0)
    assert scene.shape == (charts.CHECK_SCENE_PX, charts.CHECK_SCENE_PX, 31) and scene.dtype == np.float32
    np.testing.assert_array_equal(scene, charts.check_scene(refl, "vrhel_clothes", 0))  # the same every time
    assert not np.array_equal(scene, charts.check_scene(refl, "vrhel_clothes", 1))
    # every pixel is one of the set's reflectances times a shading factor in [0.35, 1]
    pixels = scene.reshape(-1, 31)[::97].astype(np.float64)
    scale = (pixels @ refl.T) / (refl ** 2).sum(1)  # (n, N): least-squares factor per material
    residual = np.abs(pixels[:, None, :] - scale[..., None] * refl[None]).max(-1)
    best = residual.argmin(1)
    assert residual.min(1).max() < 1e-5
    factors = scale[np.arange(len(pixels)), best]
    assert factors.min() >= 0.35 - 1e-4 and factors.max() <= 1 + 1e-4
    assert len(np.unique(best)) > 5  # many materials, not one


def test_evaluate_charts_scores_both_methods_per_check_set(library, weights_file):
    train, check = charts.split_reflectances(library)
    train_chart = charts.chart(np.concatenate(list(train.values())))
    baseline = RootPolyBaseline("srgb").fit([(render_rgb_float(train_chart, "srgb"), train_chart)])
    model = api.load_model(weights_file, device="cpu")
    result = charts.evaluate_charts(model, baseline, exact_colour=False)
    assert {k: v["model"]["patches"] for k, v in result["sets"].items()} == {k: len(v) for k, v in check.items()}
    assert result["mean"]["patches"] == sum(len(v) for v in check.values())
    # a per-pixel regression fitted on measured reflectances recovers held-out ones well; random weights do not
    assert result["baseline_mean"]["patch_rmse"] < 0.06 < result["mean"]["patch_rmse"]
    scenes = result["scenes"]
    assert list(scenes["sets"]) == list(charts.CHECK_SETS)
    for scores in [*scenes["sets"].values(), {"model": scenes["mean"], "baseline": scenes["baseline_mean"]}]:
        assert set(scores["model"]) == set(scores["baseline"]) == {"mrae", "rmse", "psnr", "sam"}
    assert scenes["baseline_mean"]["rmse"] < scenes["mean"]["rmse"]  # random weights: worse in the scenes too
    corrected = charts.evaluate_charts(model, baseline, exact_colour=True)
    assert corrected["exact_colour"] and corrected["mean"]["patch_rmse"] < result["mean"]["patch_rmse"]
    assert corrected["baseline_mean"] == result["baseline_mean"]
