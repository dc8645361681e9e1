"""Root-polynomial baseline: exact recovery, exposure invariance, save/load, real CAVE scenes."""

import numpy as np
import pytest

from gmsr_cli import spectra
from gmsr_cli.errors import DataError, WeightsError
from gmsr_cli.train import data, metrics
from gmsr_cli.train.baseline import FEATURE_NAMES, RootPolyBaseline, root_poly_features


def _srgb_encode(linear):
    # the sRGB OETF as written in spec/cameras.md
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def _synthetic_pairs(weights, rng, encode, n_scenes=3):
    for _ in range(n_scenes):
        linear = rng.uniform(0.0, 0.95, size=(30, 40, 3))
        r, g, b = linear[..., 0], linear[..., 1], linear[..., 2]
        feats = np.stack([r, g, b, np.sqrt(r * g), np.sqrt(g * b), np.sqrt(r * b)], axis=-1)
        yield encode(linear), feats @ weights


def test_features_by_hand():
    got = root_poly_features(np.array([0.04, 0.25, 0.01]))
    np.testing.assert_allclose(got, [0.04, 0.25, 0.01, 0.1, 0.05, 0.02], rtol=1e-12)
    assert FEATURE_NAMES == ("r", "g", "b", "sqrt(rg)", "sqrt(gb)", "sqrt(rb)")


@pytest.mark.parametrize("camera, encode", [("cie1964", lambda x: x), ("srgb", _srgb_encode)])
def test_fit_recovers_exact_root_polynomial_map(camera, encode):
    rng = np.random.default_rng(0)
    true_weights = rng.normal(size=(6, 31))
    model = RootPolyBaseline(camera=camera).fit(_synthetic_pairs(true_weights, rng, encode), pixels_per_scene=500, seed=1)
    np.testing.assert_allclose(model.weights, true_weights, atol=1e-8)
    rgb, cube = next(_synthetic_pairs(true_weights, rng, encode, 1))
    prediction = model.predict(rgb)
    assert prediction.dtype == np.float32 and prediction.shape == (30, 40, 31)
    np.testing.assert_allclose(prediction, cube, atol=1e-5)


def test_exposure_invariance():
    rng = np.random.default_rng(3)
    model = RootPolyBaseline(camera="srgb", weights=rng.normal(size=(6, 31)))
    linear = rng.uniform(0, 0.45, size=(7, 5, 3))
    for k in (0.5, 2.0):
        np.testing.assert_allclose(model.predict_linear(k * linear), k * model.predict_linear(linear), rtol=1e-5, atol=1e-6)
        # through the sRGB encoding too: a k times brighter photo gives a k times brighter cube
        np.testing.assert_allclose(
            model.predict(_srgb_encode(k * linear)), k * model.predict(_srgb_encode(linear)), rtol=1e-4, atol=1e-5
        )


def test_ridge_shrinks_weights():
    rng = np.random.default_rng(4)
    true_weights = rng.normal(size=(6, 31))
    plain = RootPolyBaseline("cie1964").fit(_synthetic_pairs(true_weights, rng, lambda x: x), pixels_per_scene=300)
    ridged = RootPolyBaseline("cie1964", ridge=0.1).fit(_synthetic_pairs(true_weights, rng, lambda x: x), pixels_per_scene=300)
    assert np.linalg.norm(ridged.weights) < np.linalg.norm(plain.weights)


def test_save_load_round_trip(tmp_path):
    model = RootPolyBaseline(camera="cie1964", ridge=0.01, weights=np.arange(186.0).reshape(6, 31))
    path = model.save(tmp_path / "base.npz")
    loaded = RootPolyBaseline.load(path)
    assert loaded.camera == "cie1964" and loaded.ridge == 0.01
    np.testing.assert_array_equal(loaded.weights, model.weights)
    with np.load(path) as npz:
        np.testing.assert_array_equal(npz["wavelengths"], spectra.WAVELENGTHS_NM)
    no_suffix = model.save(tmp_path / "base_model")
    assert no_suffix.exists() and RootPolyBaseline.load(no_suffix).camera == "cie1964"


def test_load_errors(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="cannot read"):
        RootPolyBaseline.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros((6, 31)))
    with pytest.raises(WeightsError, match="not a root-polynomial baseline"):
        RootPolyBaseline.load(tmp_path / "other.npz")
    with pytest.raises(WeightsError, match="call fit"):
        RootPolyBaseline().predict(np.zeros((2, 2, 3)))
    with pytest.raises(DataError, match="expected rgb"):
        RootPolyBaseline().fit([(np.zeros((4, 4, 3)), np.zeros((4, 5, 31)))])


def test_cave_fit_one_scene_test_another(shared_dir):
    cave = shared_dir / "data" / "cave"
    model = RootPolyBaseline("srgb").fit([data.whole_scene_pair(cave / "fake_and_real_peppers.h5")], seed=0)
    rgb, gt = data.whole_scene_pair(cave / "fake_and_real_food.h5")
    result = metrics.compute_metrics(model.predict(rgb), gt)
    assert all(np.isfinite(v) for v in result.values())
    assert result["psnr"] > 20.0, result
    assert result["sam"] < 40.0, result  # degrees; dark, noisy pixels dominate CAVE SAM
