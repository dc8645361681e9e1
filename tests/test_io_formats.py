"""Cube formats: our writers read back by the real third-party readers and by read_cube; files
from other tools; bad inputs."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile
from spectral.io import envi

from gmsr_cli.errors import CubeError, FormatError, OutputExistsError
from gmsr_cli.io import FORMAT_NAMES, Cube, chunks, format_for, open_cube_writer, read_cube, write_cube
from gmsr_cli.io.cube import AxesView
from gmsr_cli.io.formats import mat as mat_format

WL = np.arange(400.0, 701.0, 10.0)
H, W, B = 13, 11, 31

# (id, file name, writer options)
OUTPUTS = [
    ("hdf5", "c.h5", {}),
    ("envi", "c.hdr", {}),
    ("mat5", "c.mat", {"mat_version": "5"}),
    ("mat73", "c.mat", {"mat_version": "7.3"}),
    ("tiff", "c.tif", {}),
    ("npy", "c.npy", {}),
]
OUTPUT_IDS = [o[0] for o in OUTPUTS]


def read_third_party(kind: str, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(cube (H, W, B), wavelengths) as the format's reference library sees them."""
    if kind == "hdf5":
        with h5py.File(path, "r") as f:
            assert f["wavelengths"].attrs["units"] == "nm"
            assert f["cube"].chunks is not None and f["cube"].compression == "gzip"
            return f["cube"][()], f["wavelengths"][()]
    if kind == "envi":
        img = envi.open(str(path))
        assert img.metadata["interleave"] == "bip" and img.bands.band_unit == "nm"
        return np.asarray(img.load()), np.asarray(img.bands.centers)
    if kind == "mat5":
        m = scipy.io.loadmat(path)
        assert m["bands"].shape == (1, B)
        return m["cube"], m["bands"].reshape(-1)
    if kind == "mat73":
        with h5py.File(path, "r") as f:
            assert f.userblock_size == 512
            assert f["cube"].attrs["MATLAB_class"] == b"single"
            assert f["bands"].shape == (B, 1)
            return f["cube"][()].T, f["bands"][()].reshape(-1)
    if kind == "tiff":
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            assert page.planarconfig == 1 and page.photometric == 1  # contig, minisblack
            return tif.asarray(), np.asarray(json.loads(page.description)["wavelengths_nm"])
    if kind == "npy":
        return np.load(path), None
    raise AssertionError(kind)


@pytest.mark.parametrize("kind,name,options", OUTPUTS, ids=OUTPUT_IDS)
def test_round_trip_through_reference_reader_and_read_cube(tmp_path, cubes, kind, name, options):
    data = cubes.array(H, W)
    path = tmp_path / name
    cubes.write(path, data, [4, 4, 5], attrs={"input_file": "photo.jpg", "camera": "srgb"}, **options)

    values, wl = read_third_party(kind, path)
    assert values.dtype == np.float32 and values.shape == (H, W, B)
    np.testing.assert_array_equal(values, data)
    if wl is not None:
        np.testing.assert_allclose(wl, WL)

    with read_cube(path) as cube:
        assert cube.shape == (H, W, B) and cube.bands == B
        np.testing.assert_allclose(cube.wavelengths_nm, WL)
        np.testing.assert_array_equal(cube.to_array(), data)
        np.testing.assert_array_equal(cube.read_rows(3, 7), data[3:7])
        if kind != "npy":  # .npy has no place for provenance
            assert cube.attrs["input_file"] == "photo.jpg"
            assert cube.attrs["gmsr_cli_version"]
            assert cube.attrs["created"].startswith("20")


def test_hdf5_provenance_attributes_on_file(tmp_path, cubes):
    path = tmp_path / "c.h5"
    cubes.write(path, cubes.array(H, W), attrs={"weights_sha256": "ab" * 32, "exposure": 1.5})
    with h5py.File(path, "r") as f:
        assert f.attrs["weights_sha256"] == "ab" * 32
        assert f.attrs["exposure"] == 1.5
        assert f["cube"].chunks == (H, W, B)  # (64, 64, B) clipped to the image


def test_envi_header_fields(tmp_path, cubes):
    cubes.write(tmp_path / "c.img", cubes.array(H, W), attrs={"input_file": "a {b}.jpg"})
    assert (tmp_path / "c.hdr").is_file()
    meta = envi.read_envi_header(str(tmp_path / "c.hdr"))
    # ENVI's default bands are 1-based: 640, 550, 460 nm are indices 24, 15, 6.
    assert meta["default bands"] == ["25", "16", "7"]
    assert meta["band names"][0] == "Band 1" and meta["band names"][-1] == "Band 31"
    assert meta["fwhm"] == ["10"] * 31
    assert meta["data type"] == "4" and meta["byte order"] == "0"
    assert meta["input_file"] == "a (b).jpg"
    assert "input_file" in meta["description"]


def test_mat_v73_header_and_char_provenance(tmp_path, cubes):
    path = tmp_path / "c.mat"
    cubes.write(path, cubes.array(H, W), mat_version="7.3", attrs={"camera": "nikon"})
    head = path.read_bytes()[:128]
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[124:128] == b"\x00\x02IM"
    with h5py.File(path, "r") as f:
        text = f["provenance"][()].reshape(-1).astype("<u2").tobytes().decode("utf-16-le")
        assert f["provenance"].attrs["MATLAB_class"] == b"char"
    assert json.loads(text)["camera"] == "nikon"


def test_mat_auto_version_follows_threshold(tmp_path, cubes, monkeypatch):
    data = cubes.array(H, W)
    cubes.write(tmp_path / "small.mat", data)
    assert tmp_path.joinpath("small.mat").read_bytes()[:10] == b"MATLAB 5.0"
    monkeypatch.setattr(mat_format, "V5_MAX_BYTES", data.nbytes - 1)
    cubes.write(tmp_path / "big.mat", data)
    assert tmp_path.joinpath("big.mat").read_bytes()[:10] == b"MATLAB 7.3"
    with read_cube(tmp_path / "big.mat") as cube:
        np.testing.assert_array_equal(cube.to_array(), data)


def test_mat_v5_transposes_in_several_slabs(tmp_path, cubes, monkeypatch):
    # Force several column slabs so the slab loop, not one big copy, is what is tested.
    monkeypatch.setattr(mat_format, "TRANSPOSE_BYTES", H * B * 4 * 3)
    data = cubes.array(H, W)
    cubes.write(tmp_path / "c.mat", data, [1, 12], mat_version="5")
    np.testing.assert_array_equal(scipy.io.loadmat(tmp_path / "c.mat")["cube"], data)


def test_tiff_gdal_metadata_tag(tmp_path, cubes):
    cubes.write(tmp_path / "c.tif", cubes.array(H, W))
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:
        xml = tif.pages.first.tags[42112].value
    assert '<Item name="wavelength" sample="0">400</Item>' in xml
    assert 'role="description">700 nm</Item>' in xml


@pytest.mark.parametrize("kind,name", [("hdf5", "c.h5"), ("tiff", "c.tif"), ("npy", "c.npy")])
def test_float16_output(tmp_path, cubes, kind, name):
    data = cubes.array(H, W)
    path = tmp_path / name
    cubes.write(path, data, [5, 8], dtype="float16")
    if kind == "hdf5":
        with h5py.File(path, "r") as f:
            stored = f["cube"][()]
    elif kind == "tiff":
        stored = tifffile.imread(path)
    else:
        stored = np.load(path)
    assert stored.dtype == np.float16
    np.testing.assert_array_equal(stored, data.astype(np.float16))
    with read_cube(path) as cube:
        out = cube.to_array()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, data, atol=1e-3)


@pytest.mark.parametrize("name", ["c.hdr", "c.mat"])
def test_float16_refused_where_the_format_has_none(tmp_path, cubes, name):
    with pytest.raises(FormatError, match="float16"):
        cubes.write(tmp_path / name, cubes.array(H, W), dtype="float16")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind,name,options", OUTPUTS, ids=OUTPUT_IDS)
def test_streaming_in_blocks_equals_writing_at_once(tmp_path, cubes, kind, name, options):
    # 70 rows: blocks cross the 64-row chunk rows of the HDF5 and MAT v7.3 writers.
    data = cubes.array(70, 5)
    cubes.write(tmp_path / f"once_{name}", data, **options)
    cubes.write(tmp_path / f"blocks_{name}", data, [1, 62, 2, 5], **options)
    once, _ = read_third_party(kind, tmp_path / f"once_{name}")
    blocks, _ = read_third_party(kind, tmp_path / f"blocks_{name}")
    np.testing.assert_array_equal(blocks, once)
    np.testing.assert_array_equal(blocks, data)


@pytest.mark.parametrize("kind,name,options", OUTPUTS, ids=OUTPUT_IDS)
def test_writers_do_not_hold_the_cube(tmp_path, monkeypatch, kind, name, options):
    monkeypatch.setattr(mat_format, "TRANSPOSE_BYTES", 2**20)
    h, w = 256, 256
    cube_bytes = h * w * B * 4  # 8 MB
    # The chunked writers queue up to QUEUE_BYTES of rows for their compression threads (256 MB,
    # more than this cube): bounded, as checked here with a quarter of the cube.
    monkeypatch.setattr(chunks, "QUEUE_BYTES", cube_bytes // 4)
    rng = np.random.default_rng(3)
    tracemalloc.start()
    try:
        with open_cube_writer(tmp_path / name, h, w, WL, **options) as writer:
            for y0 in range(0, h, 8):
                writer.write_rows(y0, rng.random((8, w, B), dtype=np.float32))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < cube_bytes * 0.6, f"peak {peak / 2**20:.1f} MiB for an {cube_bytes / 2**20:.0f} MiB cube"
    with read_cube(tmp_path / name) as cube:
        assert cube.shape == (h, w, B)


def test_writer_rejects_rows_out_of_order_and_leaves_nothing(tmp_path, cubes):
    data = cubes.array(H, W)
    with pytest.raises(ValueError, match="in order"):
        with open_cube_writer(tmp_path / "c.h5", H, W, WL) as writer:
            writer.write_rows(0, data[:3])
            writer.write_rows(5, data[5:])
    with pytest.raises(ValueError, match=r"\(h, 11, 31\)"):
        with open_cube_writer(tmp_path / "c.h5", H, W, WL) as writer:
            writer.write_rows(0, data[:, :5])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind,name,options", OUTPUTS, ids=OUTPUT_IDS)
def test_incomplete_cube_is_not_published(tmp_path, cubes, kind, name, options):
    with pytest.raises(ValueError, match="only 4 of 13 rows"):
        cubes.write(tmp_path / name, cubes.array(H, W), [4], **options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind,name,options", OUTPUTS, ids=OUTPUT_IDS)
def test_existing_output_needs_overwrite(tmp_path, cubes, kind, name, options):
    path = tmp_path / name
    cubes.write(path, cubes.array(H, W, seed=1), **options)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        cubes.write(path, cubes.array(H, W, seed=2), **options)
    with read_cube(path) as cube:
        np.testing.assert_array_equal(cube.to_array(), cubes.array(H, W, seed=1))
    cubes.write(path, cubes.array(H, W, seed=2), overwrite=True, **options)
    with read_cube(path) as cube:
        np.testing.assert_array_equal(cube.to_array(), cubes.array(H, W, seed=2))


def test_envi_pair_counts_as_existing_when_only_the_header_exists(tmp_path, cubes):
    (tmp_path / "c.hdr").write_text("ENVI\n")
    with pytest.raises(OutputExistsError, match="c.hdr"):
        cubes.write(tmp_path / "c.img", cubes.array(H, W))


def test_write_cube_streams_from_a_lazy_cube(tmp_path, cubes):
    data = cubes.array(40, W)
    cubes.write(tmp_path / "a.h5", data, attrs={"scene": "x"})
    with read_cube(tmp_path / "a.h5") as cube:
        assert isinstance(cube.data, h5py.Dataset)
        written = write_cube(cube, tmp_path / "b.hdr", attrs={"note": "copy"})
    assert written == [tmp_path / "b.img", tmp_path / "b.hdr"]
    with read_cube(tmp_path / "b.img") as copy:
        np.testing.assert_array_equal(copy.to_array(), data)
        assert copy.attrs["scene"] == "x" and copy.attrs["note"] == "copy"


# ---------------------------------------------------------------- cubes written by other tools

@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_reads_envi_written_by_spectral(tmp_path, cubes, interleave):
    data = cubes.array(H, W)
    envi.save_image(str(tmp_path / "spy.hdr"), data, interleave=interleave,
                    metadata={"wavelength": list(WL / 1000.0), "wavelength units": "Micrometers"})
    with read_cube(tmp_path / "spy.hdr") as cube:
        np.testing.assert_allclose(cube.wavelengths_nm, WL)
        np.testing.assert_array_equal(cube.to_array(), data)
        np.testing.assert_array_equal(cube.read_rows(2, 5), data[2:5])


def test_envi_integer_data_uses_reflectance_scale_factor(tmp_path):
    data = np.random.default_rng(0).integers(0, 10000, (H, W, B)).astype(np.int16)
    envi.save_image(str(tmp_path / "i.hdr"), data,
                    metadata={"wavelength": list(WL), "reflectance scale factor": 10000})
    with read_cube(tmp_path / "i.hdr") as cube:
        np.testing.assert_allclose(cube.to_array(), data / 10000.0, rtol=1e-6)


def test_envi_without_wavelengths_is_an_error(tmp_path, cubes):
    envi.save_image(str(tmp_path / "nowl.hdr"), cubes.array(H, W))
    with pytest.raises(CubeError, match=r"nowl\.hdr.*wavelength"):
        read_cube(tmp_path / "nowl.hdr")


def test_reads_ntire_style_v73_mat(tmp_path, cubes):
    """An NTIRE/ARAD file as MATLAB writes it: HDF5 with a 512-byte header, `cube` seen by h5py
    as (31, W, H), `bands` (31, 1), `norm_factor`."""
    data = cubes.array(H, W)
    path = tmp_path / "ARAD_1K_0001.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        cube = f.create_dataset("cube", data=data.transpose(2, 1, 0), chunks=(B, W, H), compression="gzip")
        cube.attrs["MATLAB_class"] = np.bytes_(b"single")
        bands = f.create_dataset("bands", data=WL.reshape(B, 1))
        bands.attrs["MATLAB_class"] = np.bytes_(b"double")
        f.create_dataset("norm_factor", data=np.float64(1.0)).attrs["MATLAB_class"] = np.bytes_(b"double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 01 00:00:00 2024 HDF5 schema 1.00 .")
    with read_cube(path) as c:
        assert c.shape == (H, W, B)
        np.testing.assert_allclose(c.wavelengths_nm, WL)
        np.testing.assert_array_equal(c.to_array(), data)
        np.testing.assert_array_equal(c.read_rows(5, 6), data[5:6])
        assert c.data[:, 3, 7].shape == (H,)
        np.testing.assert_array_equal(c.data[2, :, 7], data[2, :, 7])


@pytest.mark.parametrize("compress", [False, True])
def test_reads_v5_mat_written_by_scipy(tmp_path, cubes, compress):
    data = cubes.array(H, W)
    scipy.io.savemat(tmp_path / "s.mat", {"cube": data, "bands": WL[None, :]}, do_compression=compress)
    with read_cube(tmp_path / "s.mat") as cube:
        # uncompressed: mapped lazily; compressed: loaded by scipy
        assert isinstance(cube.data, AxesView) is (not compress)
        np.testing.assert_array_equal(cube.to_array(), data)
        np.testing.assert_allclose(cube.wavelengths_nm, WL)


def test_mat_without_wavelengths_is_an_error(tmp_path, cubes):
    scipy.io.savemat(tmp_path / "nowl.mat", {"cube": cubes.array(H, W)})
    with pytest.raises(CubeError, match=r"nowl\.mat.*wavelengths"):
        read_cube(tmp_path / "nowl.mat")


def test_reads_cave_scene(shared_dir, tmp_path):
    path = shared_dir / "data" / "cave" / "beads.h5"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with h5py.File(path, "r") as f:
        raw_rows = f["cube"][100:102]
        scale = float(f["cube"].attrs["scale"])
    with read_cube(path) as cube:
        assert cube.shape == (512, 512, 31)
        np.testing.assert_allclose(cube.wavelengths_nm, WL)
        assert cube.attrs["scene"] == "beads"
        rows = cube.read_rows(100, 102)
        assert rows.dtype == np.float32 and 0.0 <= rows.min() and rows.max() <= 1.0
        np.testing.assert_allclose(rows, raw_rows * scale, rtol=1e-6)
        assert cube.band_index("550nm") == 15
        write_cube(cube, tmp_path / "beads.tif")
    with read_cube(tmp_path / "beads.tif") as copy:
        np.testing.assert_allclose(copy.read_rows(100, 102), raw_rows * scale, rtol=1e-6)


def test_reads_band_first_h5_with_other_names(tmp_path, cubes):
    data = cubes.array(H, W)
    with h5py.File(tmp_path / "o.h5", "w") as f:
        f["rad"] = data.transpose(2, 0, 1)  # (B, H, W)
        f["wl"] = WL
    with read_cube(tmp_path / "o.h5") as cube:
        np.testing.assert_array_equal(cube.to_array(), data)


def test_h5_without_wavelengths_or_cube_is_an_error(tmp_path, cubes):
    with h5py.File(tmp_path / "nowl.h5", "w") as f:
        f["cube"] = cubes.array(H, W)
    with pytest.raises(CubeError, match=r"nowl\.h5.*no wavelengths"):
        read_cube(tmp_path / "nowl.h5")
    with h5py.File(tmp_path / "nocube.h5", "w") as f:
        f["image"] = cubes.array(H, W)
        f["wavelengths"] = WL
    with pytest.raises(CubeError, match=r"nocube\.h5.*no 3-D dataset.*image"):
        read_cube(tmp_path / "nocube.h5")


def test_tiff_without_wavelengths_is_an_error(tmp_path, cubes):
    tifffile.imwrite(tmp_path / "plain.tif", cubes.array(H, W), photometric="minisblack", metadata=None)
    with pytest.raises(CubeError, match=r"plain\.tif.*no wavelengths"):
        read_cube(tmp_path / "plain.tif")


def test_npy_needs_31_bands(tmp_path, cubes):
    np.save(tmp_path / "five.npy", cubes.array(H, W, 5))
    with pytest.raises(CubeError, match=r"five\.npy.*5 bands"):
        read_cube(tmp_path / "five.npy")
    np.save(tmp_path / "flat.npy", np.zeros((4, 4), np.float32))
    with pytest.raises(CubeError, match=r"flat\.npy"):
        read_cube(tmp_path / "flat.npy")


# ------------------------------------------------------------------------------- bad inputs

def test_format_choice():
    assert format_for("a.H5").name == "hdf5"
    assert format_for("a.img").name == "envi"
    assert format_for("a.h5", format="npy").name == "npy"
    assert set(FORMAT_NAMES) == {"hdf5", "envi", "mat", "tiff", "npy"}
    with pytest.raises(FormatError, match=r"a\.xyz.*'\.xyz'.*hdf5 \(\.h5, \.hdf5\)"):
        format_for("a.xyz")
    with pytest.raises(FormatError, match="unknown cube format 'zarr'"):
        format_for("a.h5", format="zarr")


def test_explicit_format_wins_for_odd_extensions(tmp_path, cubes):
    data = cubes.array(H, W)
    cubes.write(tmp_path / "cube.dat", data, format="npy")
    with read_cube(tmp_path / "cube.dat", format="npy") as cube:
        np.testing.assert_array_equal(cube.to_array(), data)
    with pytest.raises(FormatError, match="cube.dat"):
        read_cube(tmp_path / "cube.dat")


def test_unknown_writer_option_is_an_error(tmp_path, cubes):
    with pytest.raises(FormatError, match="mat_version"):
        cubes.write(tmp_path / "c.h5", cubes.array(H, W), mat_version="5")


READ_NAMES = ["c.h5", "c.hdr", "c.img", "c.mat", "c.tif", "c.npy"]


@pytest.mark.parametrize("name", READ_NAMES)
def test_missing_file(tmp_path, name):
    with pytest.raises(CubeError, match=rf"{name.replace('.', '[.]')}.*not found"):
        read_cube(tmp_path / name)


@pytest.mark.parametrize("name", READ_NAMES)
@pytest.mark.parametrize("content", [b"", b"this is not a cube\n" * 20, bytes(range(256)) * 8])
def test_corrupt_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    if name == "c.hdr":
        (tmp_path / "c.img").write_bytes(content)
    if name == "c.img":
        (tmp_path / "c.hdr").write_bytes(content)
    with pytest.raises(CubeError) as info:
        read_cube(path)
    message = str(info.value)
    assert "\n" not in message and "c." in message


@pytest.mark.parametrize("kind,name,options", OUTPUTS, ids=OUTPUT_IDS)
@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_file(tmp_path, cubes, kind, name, options, keep):
    path = tmp_path / name
    cubes.write(path, cubes.array(40, 20), **options)
    target = tmp_path / "c.img" if kind == "envi" else path
    blob = target.read_bytes()
    target.write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(CubeError, match=r"c\.(h5|hdr|img|mat|tif|npy)"):
        with read_cube(path) as cube:
            cube.to_array()  # lazy formats may only notice when reading


def test_envi_header_without_data_file(tmp_path, cubes):
    cubes.write(tmp_path / "c.hdr", cubes.array(H, W))
    (tmp_path / "c.img").unlink()
    with pytest.raises(CubeError, match=r"c\.hdr.*no ENVI data file"):
        read_cube(tmp_path / "c.hdr")


# ----------------------------------------------------------------------------- the Cube type

def test_band_index():
    cube = Cube(np.zeros((2, 2, 31), np.float32), WL)
    assert cube.band_index("560nm") == 16
    assert cube.band_index("560 nm") == 16
    assert cube.band_index("560") == 16
    assert cube.band_index(563.0) == 16
    assert cube.band_index(16) == 16
    assert cube.band_index(-1) == 30
    for bad in ("900nm", 31, "abc", 395.0 - 10):
        with pytest.raises(CubeError, match="400-700 nm"):
            cube.band_index(bad)


def test_cube_checks_its_parts():
    with pytest.raises(CubeError, match="31 bands but 3 wavelengths"):
        Cube(np.zeros((2, 2, 31), np.float32), [400, 500, 600])
    with pytest.raises(CubeError, match="needs a scale"):
        Cube(np.zeros((2, 2, 31), np.uint16), WL)
    cube = Cube(np.full((2, 2, 31), 32768, np.uint16), WL, scale=1 / 65535)
    np.testing.assert_allclose(cube.to_array(), 32768 / 65535, rtol=1e-6)


@pytest.mark.parametrize("perm", [(2, 1, 0), (1, 2, 0), (0, 2, 1)])
def test_axes_view_matches_numpy_transpose(perm):
    view_data = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    stored = np.transpose(view_data, np.argsort(perm))
    view = AxesView(stored, perm)
    assert view.shape == view_data.shape
    for key in [np.s_[:, :, :], np.s_[1:3], np.s_[2, :, 1:4], np.s_[:, 3, :], np.s_[1, 2, 3], np.s_[..., 2]]:
        np.testing.assert_array_equal(view[key], view_data[key])


@pytest.mark.parametrize("map_bytes", [64 * 2**20, 1])
@pytest.mark.parametrize("order", ["C", "F"])
def test_mapped_array_matches_numpy(tmp_path, monkeypatch, map_bytes, order):
    from gmsr_cli.io import cube as cube_module
    from gmsr_cli.io.cube import MappedArray

    monkeypatch.setattr(cube_module, "MAP_BYTES", map_bytes)  # 1: one axis-0 entry per mapping
    expected = np.arange(5 * 4 * 3, dtype="<f4").reshape(5, 4, 3)
    path = tmp_path / "raw.bin"
    path.write_bytes(b"HEAD" + expected.tobytes(order=order))
    mapped = MappedArray(path, "<f4", 4, expected.shape, order=order)
    for key in [np.s_[...], np.s_[1:4], np.s_[::2, 1], np.s_[-1], np.s_[:, :, 2], np.s_[2, 3, 1],
                np.s_[1:5:3, ::-1], np.s_[4:1:-1], np.s_[3:3]]:
        np.testing.assert_array_equal(mapped[key], expected[key])
    np.testing.assert_array_equal(np.asarray(mapped), expected)
    with pytest.raises(IndexError):
        mapped[5]
