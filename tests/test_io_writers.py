"""The threaded HDF5 and TIFF writers (exact chunks, worker errors reach the caller, bounded
memory), mantissa rounding, ENVI/MAT/HDF5 variable choices, and the CLI options that reach them."""

from __future__ import annotations

import threading
import tracemalloc

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile
from click.testing import CliRunner
from PIL import Image
from spectral.io import envi

from gmsr_cli.cli.main import cli
from gmsr_cli.errors import CubeError, FormatError
from gmsr_cli.io import chunks, open_cube_writer, read_cube
from gmsr_cli.io.codecs import keep_mantissa_bits, shuffled
from gmsr_cli.io.registry import default_options

WL = np.arange(400.0, 701.0, 10.0)
B = 31


def smooth_cube(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Spectrum-like values (smooth over bands, textured over pixels), about -0.03..1.05."""
    rng = np.random.default_rng(seed)
    base = rng.random((h, w, 1), dtype=np.float32)
    slope = np.linspace(-0.3, 0.3, B, dtype=np.float32)
    return (base + slope * rng.random((h, w, 1), dtype=np.float32)).clip(-0.03, 1.05).astype(np.float32)


def stream(path, data, rows, **options):
    with open_cube_writer(path, data.shape[0], data.shape[1], WL[: data.shape[2]], **options) as writer:
        for y0 in range(0, data.shape[0], rows):
            writer.write_rows(y0, data[y0 : y0 + rows])


# ------------------------------------------------------------------------------ HDF5 threads

@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("shape,rows", [((70, 150), 9), ((32, 64), 32), ((5, 3), 1)])
def test_threaded_hdf5_chunks_read_back_exactly(tmp_path, threads, dtype, shape, rows):
    """Direct chunk writes must be what HDF5's shuffle + deflate filters decode, edge chunks too."""
    data = smooth_cube(*shape)
    stream(tmp_path / "c.h5", data, rows, dtype=dtype, threads=threads)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        cube = f["cube"]
        assert cube.compression == "gzip" and cube.shuffle and cube.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(cube[()], data.astype(dtype))


def test_hdf5_uncompressed_and_level_options(tmp_path):
    data = smooth_cube(40, 70)
    stream(tmp_path / "none.h5", data, 16, compression="none")
    stream(tmp_path / "l6.h5", data, 16, compression_level=6)
    with h5py.File(tmp_path / "none.h5", "r") as f:
        assert f["cube"].compression is None
        np.testing.assert_array_equal(f["cube"][()], data)
    with h5py.File(tmp_path / "l6.h5", "r") as f:
        assert f["cube"].compression_opts == 6
        np.testing.assert_array_equal(f["cube"][()], data)
    with pytest.raises(FormatError, match="compression must be one of gzip, lzf, none"):
        stream(tmp_path / "bad.h5", data, 16, compression="zstd")
    assert not (tmp_path / "bad.h5").exists()


def _fail_within(seconds: float, action) -> BaseException | None:
    """Run action in a thread; it must end (with an exception) within `seconds`: no hang."""
    caught: list[BaseException] = []

    def target():
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            caught.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the writer hung after a worker error"
    return caught[0] if caught else None


@pytest.mark.parametrize("name,height,step,options,close_under", [
    ("c.h5", 200, 40, {"threads": 2}, lambda writer: writer.file.close()),
    ("c.tif", 300, 20, {"compression": "deflate", "threads": 2}, lambda writer: writer.tiff.filehandle.close()),
], ids=["hdf5", "tiff"])
def test_worker_error_reaches_the_caller_and_leaves_nothing(tmp_path, name, height, step, options, close_under):
    """The file closed under the writer: the workers' chunk (strip) writes fail for real."""
    data = smooth_cube(height, 130)

    def write():
        with open_cube_writer(tmp_path / name, height, 130, WL, **options) as writer:
            writer.write_rows(0, data[:40])
            close_under(writer)
            for y0 in range(40, height, step):
                writer.write_rows(y0, data[y0 : y0 + step])

    error = _fail_within(30, write)
    assert error is not None
    assert list(tmp_path.iterdir()) == []


def test_interrupted_compressed_writers_leave_nothing(tmp_path):
    data = smooth_cube(100, 60)
    for name, options in (("c.h5", {}), ("c.tif", {"compression": "zstd"})):
        with pytest.raises(KeyboardInterrupt):
            with open_cube_writer(tmp_path / name, 100, 60, WL, **options) as writer:
                writer.write_rows(0, data[:70])
                raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,options", [("c.h5", {"threads": 2}), ("c.tif", {"compression": "deflate", "threads": 2})])
def test_compressed_writers_do_not_hold_the_cube(tmp_path, monkeypatch, name, options):
    h, w = 256, 256
    cube_bytes = h * w * B * 4
    data = smooth_cube(h, w)
    # The HDF5 writer queues up to QUEUE_BYTES of chunk rows for its workers (256 MB: more than
    # this whole cube); with a quarter of the cube, its memory must stay near that bound.
    monkeypatch.setattr(chunks, "QUEUE_BYTES", cube_bytes // 4)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        stream(tmp_path / name, data, 8, **options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before < cube_bytes * 0.6, f"peak {(peak - before) / 2**20:.1f} MiB"


# ------------------------------------------------------------------------------ compression

def test_shuffle_matches_hdf5_byte_order():
    a = np.arange(24, dtype="<f4").reshape(2, 3, 4)
    part = a[:, 1:]
    expected = np.ascontiguousarray(part).view(np.uint8).reshape(-1, 4).T.tobytes()
    assert shuffled(part).tobytes() == expected


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_keep_bits_error_bound_and_special_values(bits):
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0.5, 0.3, 10_000), [0.0, -0.0, 1e-40, -2.5]]).astype(np.float32)
    rounded = keep_mantissa_bits(values, bits)
    error = np.abs(rounded.astype(np.float64) - values)
    normal = np.abs(values) >= np.finfo(np.float32).tiny
    assert (error[normal] / np.abs(values[normal])).max() <= 2.0 ** -(bits + 1)
    assert error[~normal].max() <= 2.0 ** -(126 + bits)
    assert np.all((rounded.view(np.uint32) & np.uint32((1 << (23 - bits)) - 1)) == 0)
    special = np.array([np.nan, np.inf, -np.inf, np.finfo(np.float32).max], dtype=np.float32)
    out = keep_mantissa_bits(special, bits)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf and np.isfinite(out[3])
    assert keep_mantissa_bits(values, 23) is values


def test_keep_bits_option_makes_smaller_files_within_the_bound(tmp_path):
    data = smooth_cube(64, 64)
    stream(tmp_path / "exact.h5", data, 64)
    stream(tmp_path / "k12.h5", data, 64, keep_bits=12)
    assert (tmp_path / "k12.h5").stat().st_size < 0.8 * (tmp_path / "exact.h5").stat().st_size
    with read_cube(tmp_path / "k12.h5") as cube:
        np.testing.assert_allclose(cube.to_array(), data, rtol=2.0**-13, atol=0)
        assert cube.attrs is not None
    with h5py.File(tmp_path / "k12.h5", "r") as f:
        assert f["cube"].attrs["mantissa_bits_kept"] == 12
    with read_cube(tmp_path / "exact.h5") as cube:
        np.testing.assert_array_equal(cube.to_array(), data)


@pytest.mark.parametrize("compression", ["deflate", "zstd", "lzw"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_compressed_tiff_round_trip(tmp_path, compression, dtype):
    data = smooth_cube(50, 37)
    stream(tmp_path / "c.tif", data, 7, compression=compression, dtype=dtype)
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:
        page = tif.pages.first
        assert page.predictor == 3 and page.compression.name.lower().endswith(compression if compression != "deflate" else "deflate")
        assert "shape" not in page.description  # no stale shape in files GDAL derives
        np.testing.assert_array_equal(tif.asarray(), data.astype(dtype))
    with read_cube(tmp_path / "c.tif") as cube:
        np.testing.assert_allclose(cube.wavelengths_nm, WL)
        np.testing.assert_array_equal(cube.to_array(), data.astype(dtype))


# ----------------------------------------------------------------------- ENVI, MAT, variables

def test_envi_wavelengths_from_band_names_in_micrometres(tmp_path):
    data = smooth_cube(4, 3)
    envi.save_image(str(tmp_path / "n.hdr"), data, metadata={"band names": [f"{w / 1000:g} um" for w in WL]})
    with read_cube(tmp_path / "n.hdr") as cube:
        np.testing.assert_allclose(cube.wavelengths_nm, WL)
        np.testing.assert_array_equal(cube.to_array(), data)
    envi.save_image(str(tmp_path / "m.hdr"), data, metadata={"band names": ["red"] + [f"{w:g} nm" for w in WL[1:]]})
    with pytest.raises(CubeError, match=r"m\.hdr.*no 'wavelength' field"):
        read_cube(tmp_path / "m.hdr")


def test_envi_header_fields_say_what_the_values_are(tmp_path):
    stream(tmp_path / "c.hdr", smooth_cube(3, 4), 3)
    meta = envi.read_envi_header(str(tmp_path / "c.hdr"))
    assert meta["sensor type"] == "Unknown" and "data ignore value" not in meta
    assert "may fall slightly outside [0, 1]" in meta["description"]


def test_mat_variable_choice(tmp_path):
    data = smooth_cube(5, 4)
    path = tmp_path / "m.mat"
    scipy.io.savemat(path, {"hsi": data, "ref": data * 2, "lam": WL[None, :], "t": np.arange(31.0)})
    with pytest.raises(CubeError, match=r"m\.mat: several 3-D variables; choose the cube with --var NAME "
                                        r"\(variables: hsi \(5, 4, 31\), ref \(5, 4, 31\)"):
        read_cube(path)
    with read_cube(path, variable="ref") as cube:  # lam: the only wavelength-like vector
        np.testing.assert_array_equal(cube.to_array(), data * 2)
        np.testing.assert_allclose(cube.wavelengths_nm, WL)
    with pytest.raises(CubeError, match="no variable 'nope'"):
        read_cube(path, variable="nope")
    scipy.io.savemat(path, {"hsi": data, "a": WL[None, :], "b": WL[None, :] + 1})
    with pytest.raises(CubeError, match="several variables could be its 31 wavelengths.*--wavelength-var"):
        read_cube(path)
    with read_cube(path, wavelength_variable="b") as cube:
        np.testing.assert_allclose(cube.wavelengths_nm, WL + 1)


def test_variables_are_refused_for_formats_without_them(tmp_path):
    stream(tmp_path / "c.tif", smooth_cube(3, 3), 3)
    with pytest.raises(FormatError, match="no named variables"):
        read_cube(tmp_path / "c.tif", variable="cube")
    with default_options(read={"variable": "cube"}), pytest.raises(FormatError, match="no named variables"):
        read_cube(tmp_path / "c.tif")


# ------------------------------------------------------------------------------------ the CLI

def test_cli_writer_options_reach_the_files(tmp_path):
    photo = tmp_path / "p.png"
    yy, xx = np.mgrid[0:12, 0:10]
    Image.fromarray(np.stack([xx * 20, yy * 20, 200 - xx * 9], -1).astype(np.uint8)).save(photo)
    from gmsr_cli.model.gmsr import GMSRNet
    from gmsr_cli.model.weights import save_weights

    weights = save_weights(GMSRNet(), tmp_path / "w.safetensors", card={"name": "t", "camera": "srgb"})
    common = ["--weights", str(weights), "--device", "cpu", "--tile", "0"]
    runner = CliRunner()
    for out, extra in (("c.tif", ["--compression", "zstd"]), ("c.mat", ["--mat-version", "7.3"]),
                       ("c.h5", ["--keep-bits", "12"])):
        result = runner.invoke(cli, ["reconstruct", str(photo), "-o", str(tmp_path / out), *common, *extra])
        assert result.exit_code == 0, result.output
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:
        assert tif.pages.first.compression.name == "ZSTD"
    assert (tmp_path / "c.mat").read_bytes()[:10] == b"MATLAB 7.3"
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f["cube"].attrs["mantissa_bits_kept"] == 12
    result = runner.invoke(cli, ["reconstruct", str(photo), "-o", str(tmp_path / "c.hdr"), *common,
                                 "--compression", "zstd"])
    assert result.exit_code == 1 and "envi format has no option compression" in result.output
    assert not (tmp_path / "c.hdr").exists() and not (tmp_path / "c.img").exists()


def test_cli_var_options_choose_the_variables(tmp_path):
    data = smooth_cube(5, 4)
    scipy.io.savemat(tmp_path / "m.mat", {"hsi": data, "ref": data, "lam": WL[None, :]})
    runner = CliRunner()
    result = runner.invoke(cli, ["info", str(tmp_path / "m.mat")])
    assert result.exit_code == 1 and "--var NAME" in result.output and "hsi (5, 4, 31)" in result.output
    result = runner.invoke(cli, ["info", str(tmp_path / "m.mat"), "--var", "hsi", "--wavelength-var", "lam"])
    assert result.exit_code == 0, result.output
    assert "5 x 4 x 31" in result.output and "400-700 nm" in result.output
    result = runner.invoke(cli, ["preview", str(tmp_path / "m.mat"), "--var", "ref", "-o", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "p.png").size[0] >= 4


def test_info_reports_a_broken_tiff_cube_as_a_cube_error(tmp_path):
    stream(tmp_path / "c.tif", smooth_cube(40, 30), 40)
    (tmp_path / "cut.tif").write_bytes((tmp_path / "c.tif").read_bytes()[:6000])
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "cut.tif")])
    assert result.exit_code == 1 and "truncated" in result.output and "photo" not in result.output
