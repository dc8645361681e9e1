"""`gmsr reconstruct`: every output format reopened by the library its users use, with wavelengths."""

import json

import h5py
import numpy as np
import pytest
import scipy.io
import spectral
import tifffile
from PIL import Image

from gmsr_cli import api
from gmsr_cli.spectra import WAVELENGTHS_NM

H, W = 24, 20
TILING = ["--tile", "16", "--overlap", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def photo(tmp_path_factory, photos):
    return photos.write(tmp_path_factory.mktemp("photos") / "photo.png", H, W)


@pytest.fixture(scope="module")
def expected(photo, weights_file):
    return api.reconstruct_image(photo, weights=weights_file, device="cpu", tile_px=16, overlap_px=4)


@pytest.fixture
def reconstruct(gmsr, weights_file):
    """`gmsr reconstruct ARGS... --weights <random weights> --tile 16 --overlap 4 --device cpu`."""
    return lambda *args, code=None: gmsr("reconstruct", *args, "--weights", weights_file, *TILING, code=code)


def read_h5(path):
    with h5py.File(path, "r") as f:
        return f["cube"][...], f["wavelengths"][...], dict(f.attrs)


def read_envi(path):
    image = spectral.open_image(str(path))
    return np.asarray(image.load()), np.array(image.bands.centers), image.metadata


def read_mat(path):
    m = scipy.io.loadmat(path)
    return m["cube"], m["bands"].ravel(), {}


def read_tiff(path):
    with tifffile.TiffFile(path) as tif:
        meta = json.loads(tif.pages.first.description)
        return tif.asarray(), np.array(meta["wavelengths_nm"]), meta["attrs"]


def read_npy(path):
    return np.load(path), None, {}


@pytest.mark.parametrize("name,reader", [("cube.h5", read_h5), ("cube.hdf5", read_h5), ("cube.hdr", read_envi),
                                         ("cube.img", read_envi), ("cube.mat", read_mat), ("cube.tif", read_tiff),
                                         ("cube.npy", read_npy)])
def test_every_format_round_trips(tmp_path, photo, reconstruct, expected, name, reader):
    out = tmp_path / name
    result = reconstruct(photo, "-o", out, code=0)
    assert "Wrote" in result.output
    path = out.with_suffix(".hdr") if reader is read_envi else out
    data, wavelengths, attrs = reader(path)
    assert data.shape == (H, W, 31) and data.dtype == np.float32
    np.testing.assert_array_equal(data, expected)
    if wavelengths is not None:
        np.testing.assert_allclose(wavelengths, WAVELENGTHS_NM)
    if attrs:
        assert attrs["weights"] == "test-random-init" and str(attrs["tile_px"]) == "16"


def test_default_output_and_explicit_format(tmp_path, photo, reconstruct, expected):
    local = tmp_path / "p.png"
    local.write_bytes(photo.read_bytes())
    reconstruct(local, code=0)
    np.testing.assert_array_equal(read_h5(tmp_path / "p.h5")[0], expected)
    reconstruct(local, "-o", tmp_path / "cube.data", "--format", "hdf5", code=0)
    np.testing.assert_array_equal(read_h5(tmp_path / "cube.data")[0], expected)


def test_float16_output(tmp_path, photo, reconstruct, expected):
    out = tmp_path / "half.h5"
    reconstruct(photo, "-o", out, "--dtype", "float16", code=0)
    data = read_h5(out)[0]
    assert data.dtype == np.float16
    np.testing.assert_array_equal(data, expected.astype(np.float16))


def test_overwrite_only_when_asked(tmp_path, photo, reconstruct):
    out = tmp_path / "cube.h5"
    reconstruct(photo, "-o", out, code=0)
    before = out.read_bytes()
    result = reconstruct(photo, "-o", out, "--tta", code=1)
    assert result.output.strip() == f"Error: {out} already exists; pass --overwrite to replace it"
    assert out.read_bytes() == before
    reconstruct(photo, "-o", out, "--tta", "--overwrite", code=0)
    assert read_h5(out)[2]["tta"] == 1


def test_alpha_is_dropped_with_a_warning(tmp_path, photo, reconstruct, expected):
    rgba = np.dstack([np.asarray(Image.open(photo)), np.full((H, W), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    result = reconstruct(tmp_path / "alpha.png", "-o", tmp_path / "a.h5", code=0)
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "alpha" in warnings[0] and "alpha.png" in warnings[0]
    np.testing.assert_array_equal(read_h5(tmp_path / "a.h5")[0], expected)


def test_sixteen_bit_tiff_keeps_its_precision(tmp_path, photos, weights_file, reconstruct):
    deep = photos.write(tmp_path / "deep.tif", H, W, bit_depth=16)
    reconstruct(deep, "-o", tmp_path / "deep.h5", code=0)
    data, _, attrs = read_h5(tmp_path / "deep.h5")
    assert attrs["source_bit_depth"] == 16
    pixels = photos.array(H, W, bit_depth=16)
    reference = api.reconstruct_image(pixels.astype(np.float32) / np.float32(65535), weights=weights_file,
                                      device="cpu", tile_px=16, overlap_px=4)
    np.testing.assert_allclose(data, reference, atol=1e-5)


def test_whole_image_pass_and_json_info(tmp_path, photo, weights_file, gmsr):
    out = tmp_path / "whole.h5"
    gmsr("reconstruct", photo, "-o", out, "--weights", weights_file, "--tile", "0", "--device", "cpu", code=0)
    tiled_large = tmp_path / "large.h5"
    gmsr("reconstruct", photo, "-o", tiled_large, "--weights", weights_file, "--tile", "512", "--device", "cpu",
         code=0)
    np.testing.assert_array_equal(read_h5(out)[0], read_h5(tiled_large)[0])
    info = json.loads(gmsr("info", out, "--json").output)
    assert info["attrs"]["tile_px"] == 0 and info["attrs"]["source_image"] == str(photo)
