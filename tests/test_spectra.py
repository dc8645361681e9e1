"""Camera models and rendering against spec/cameras.md and its golden values."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gmsr_cli import spectra
from gmsr_cli.errors import CubeError, FormatError, InputImageError

PACKAGE_DATA = Path(spectra.__file__).parent / "data" / "standard_cameras.npz"


@pytest.fixture(scope="module")
def golden(shared_dir):
    with np.load(shared_dir / "spec" / "golden" / "render_golden.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def shared_cameras(shared_dir):
    with np.load(shared_dir / "data" / "cameras" / "cameras_400_700_10nm.npz") as npz:
        return {key: npz[key] for key in npz.files}


def _assert_rendering_matches(got: np.ndarray, expected: np.ndarray) -> None:
    # spec: exact, rounding ties aside (at most 1 level on at most a handful of pixels).
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() <= 1
    assert np.count_nonzero(diff.any(axis=-1)) <= 5


def test_wavelength_grid():
    assert spectra.WAVELENGTHS_NM.shape == (31,)
    assert spectra.WAVELENGTHS_NM.dtype == np.float64
    assert spectra.WAVELENGTHS_NM[0] == 400.0 and spectra.WAVELENGTHS_NM[-1] == 700.0
    assert np.all(np.diff(spectra.WAVELENGTHS_NM) == 10.0)


@pytest.mark.parametrize("camera", ["srgb", "cie1964"])
def test_golden_renderings(golden, camera):
    got = spectra.render_rgb(golden["cube"], camera)
    assert got.dtype == np.uint8 and got.shape == (40, 48, 3)
    _assert_rendering_matches(got, golden[camera])


def test_golden_srgb_matrix(golden):
    np.testing.assert_allclose(spectra.camera_matrix("srgb"), golden["srgb_matrix"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("camera", ["srgb", "cie1964"])
def test_render_float_is_render_over_255(golden, camera):
    as_float = spectra.render_rgb_float(golden["cube"], camera)
    assert as_float.dtype == np.float32
    expected = (spectra.render_rgb(golden["cube"], camera) / 255.0).astype(np.float32)
    np.testing.assert_array_equal(as_float, expected)


@pytest.mark.parametrize("camera", ["srgb", "cie1964"])
def test_render_float_torch_matches_numpy(golden, camera):
    cube = torch.from_numpy(golden["cube"].copy())
    got = spectra.render_rgb_float(cube, camera)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    _assert_rendering_matches(np.rint(got.numpy() * 255).astype(np.uint8), golden[camera])
    # (B, 31, H, W) as in the training loop -> (B, 3, H, W)
    batch = cube.permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    got_bchw = spectra.render_rgb_float(batch, camera, band_axis=1)
    assert got_bchw.shape == (2, 3, 40, 48)
    np.testing.assert_array_equal(got_bchw[1].permute(1, 2, 0).numpy(), got.numpy())


def test_render_float_unquantized_inverts_with_linearize(golden):
    cube = golden["cube"][:32]  # rows without values above 1
    encoded = spectra.render_rgb_float(cube, "srgb", quantize=False)
    linear = np.clip(cube.astype(np.float64) @ spectra.camera_matrix("srgb"), 0, 1)
    np.testing.assert_allclose(spectra.linearize(encoded.astype(np.float64), "srgb"), linear, atol=1e-6)
    # 8-bit quantisation moves a value by at most half a level.
    assert np.abs(spectra.render_rgb_float(cube, "srgb") - encoded).max() <= 0.5 / 255 + 1e-6
    # linear cameras: identity
    rgb = np.linspace(0, 1, 12).reshape(4, 3)
    np.testing.assert_array_equal(spectra.linearize(rgb, "cie1964"), rgb)


def test_linearize_known_values():
    # sRGB: 0.5 encoded is ((0.5 + 0.055) / 1.055) ** 2.4 = 0.21404114...; 0.04 is on the linear toe.
    got = spectra.linearize(np.array([0.0, 0.04, 0.5, 1.0]), "srgb")
    np.testing.assert_allclose(got, [0.0, 0.04 / 12.92, 0.21404114048223255, 1.0], rtol=1e-12)
    torch_got = spectra.linearize(torch.tensor([0.04, 0.5], dtype=torch.float64), "srgb")
    np.testing.assert_allclose(torch_got.numpy(), got[1:3], rtol=1e-12)
    with pytest.raises(InputImageError):
        spectra.linearize(np.array([0, 128, 255], dtype=np.uint8), "srgb")


def test_package_data_equals_shared_file(shared_cameras):
    with np.load(PACKAGE_DATA) as shipped:
        assert sorted(shipped.files) == ["cie1931_2deg_cmf", "cie1964_w_gain", "wavelengths"]
        for key in shipped.files:
            assert shipped[key].dtype == shared_cameras[key].dtype
            np.testing.assert_array_equal(shipped[key], shared_cameras[key])
    np.testing.assert_allclose(shared_cameras["wavelengths"], spectra.WAVELENGTHS_NM)


@pytest.mark.parametrize("camera", ["srgb", "cie1964"])
def test_flat_spectrum_maps_to_white(camera):
    flat = np.ones(31)
    np.testing.assert_allclose(flat @ spectra.camera_matrix(camera), [1.0, 1.0, 1.0], atol=1e-6)
    assert spectra.render_rgb(flat, camera).tolist() == [255, 255, 255]
    assert spectra.render_rgb(0.4 * flat, "cie1964").tolist() == [102, 102, 102]  # linear: 0.4 * 255


def test_srgb_mid_grey():
    # Linear 0.2 encodes to 1.055 * 0.2 ** (1 / 2.4) - 0.055 = 0.48453; * 255 = 123.55 -> 124.
    assert spectra.render_rgb(np.full(31, 0.2), "srgb").tolist() == [124, 124, 124]


def test_clipping_above_one():
    assert spectra.render_rgb(np.full((2, 31), 1.7), "srgb").tolist() == [[255, 255, 255]] * 2
    assert spectra.render_rgb(np.full(31, -0.3), "cie1964").tolist() == [0, 0, 0]


def test_measured_cameras_normalised(shared_dir, shared_cameras):
    names = spectra.camera_names()
    assert names[:2] == ["srgb", "cie1964"]
    assert names[2:] == [str(n) for n in shared_cameras["jiang2013_names"]]
    for i, name in enumerate(names[2:]):
        matrix = spectra.camera_matrix(name)
        assert spectra.camera_kind(name) == "linear"
        flat_rgb = np.ones(31) @ matrix
        assert flat_rgb.max() == pytest.approx(1.0, abs=1e-12)
        assert flat_rgb.min() > 0.2  # every channel sees a white surface
        # the shape of the response is the measured one, only rescaled
        raw = shared_cameras["jiang2013_ssf"][i]
        np.testing.assert_allclose(matrix * raw.sum(axis=0).max(), raw, rtol=1e-12)
    assert spectra.render_rgb(np.ones(31), names[5]).max() == 255


def test_camera_name_forms(shared_dir):
    np.testing.assert_array_equal(spectra.camera_matrix("canon-1dmarkiii"), spectra.camera_matrix("Canon 1DMarkIII"))
    assert spectra.camera_kind("SRGB") == "srgb"


def test_unknown_camera_lists_choices(shared_dir):
    with pytest.raises(FormatError, match="unknown camera 'nikon-d9000'.*srgb, cie1964, Canon 1DMarkIII"):
        spectra.camera_matrix("nikon-d9000")


def test_missing_measured_data(tmp_path, monkeypatch):
    monkeypatch.setenv(spectra.CAMERA_DATA_ENV, str(tmp_path / "absent.npz"))
    assert spectra.camera_names() == ["srgb", "cie1964"]
    with pytest.raises(FormatError, match="GMSR_CAMERA_DATA"):
        spectra.camera_matrix("Canon 20D")
    # the default cameras come from package data and keep working
    assert spectra.render_rgb(np.ones(31)).tolist() == [255, 255, 255]


def test_measured_data_via_environment(tmp_path, monkeypatch, shared_cameras):
    path = tmp_path / "cams.npz"
    np.savez(
        path,
        wavelengths=shared_cameras["wavelengths"],
        jiang2013_names=np.array(["Test Cam"]),
        jiang2013_ssf=2.0 * shared_cameras["jiang2013_ssf"][:1],
    )
    monkeypatch.setenv(spectra.CAMERA_DATA_ENV, str(path))
    assert spectra.camera_names() == ["srgb", "cie1964", "Test Cam"]
    assert (np.ones(31) @ spectra.camera_matrix("test-cam")).max() == pytest.approx(1.0)


def test_render_h5_dataset_in_row_blocks(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    cube = rng.uniform(0, 1.1, size=(37, 5, 31)).astype(np.float32)
    with h5py.File(tmp_path / "c.h5", "w") as fh:
        fh["cube"] = cube
    monkeypatch.setattr(spectra, "RENDER_BLOCK_ROWS", 8)  # 37 rows -> 5 blocks, the last partial
    with h5py.File(tmp_path / "c.h5", "r") as fh:
        from_file = spectra.render_rgb(fh["cube"], "srgb")
        from_file_float = spectra.render_rgb_float(fh["cube"], "cie1964")
    np.testing.assert_array_equal(from_file, spectra.render_rgb(cube.reshape(-1, 31), "srgb").reshape(37, 5, 3))
    np.testing.assert_array_equal(from_file_float, spectra.render_rgb_float(cube[None], "cie1964")[0])


def test_bad_cubes():
    with pytest.raises(CubeError, match="31 bands"):
        spectra.render_rgb(np.zeros((4, 4, 30)))
    with pytest.raises(CubeError, match="float reflectance"):
        spectra.render_rgb(np.zeros((4, 4, 31), dtype=np.uint16))
    with pytest.raises(CubeError, match="float reflectance"):
        spectra.render_rgb_float(torch.zeros((4, 31), dtype=torch.int32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_render_float_cuda_matches_numpy(golden):
    cube = torch.from_numpy(golden["cube"].copy()).cuda()
    got = spectra.render_rgb_float(cube, "srgb")
    assert got.device.type == "cuda"
    _assert_rendering_matches(np.rint(got.cpu().numpy() * 255).astype(np.uint8), golden["srgb"])


def test_render_io_cube(tmp_path, monkeypatch):
    from gmsr_cli.io import Cube, read_cube, write_cube

    rng = np.random.default_rng(5)
    counts = rng.integers(0, 65536, size=(21, 6, 31), dtype=np.uint16)
    scaled = Cube(counts, spectra.WAVELENGTHS_NM, scale=1 / 65535)
    expected = spectra.render_rgb(counts.astype(np.float64) / 65535)
    monkeypatch.setattr(spectra, "RENDER_BLOCK_ROWS", 8)
    np.testing.assert_array_equal(spectra.render_rgb(scaled), expected)
    (path, *_) = write_cube(scaled, tmp_path / "c.h5")
    with read_cube(path) as lazy:  # h5py-backed Cube, read in row blocks
        _assert_rendering_matches(spectra.render_rgb(lazy), expected)  # float32 storage
        assert spectra.render_rgb_float(lazy, "cie1964").shape == (21, 6, 3)
    wrong_grid = Cube(np.zeros((2, 2, 31), np.float32), np.arange(31) * 10.0 + 410.0)
    with pytest.raises(CubeError, match="400-700 nm"):
        spectra.render_rgb(wrong_grid)
