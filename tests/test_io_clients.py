"""Round trips through the programs people open cubes with: GDAL, GNU Octave and h5dump read our
files with their wavelengths, and the files they write read back in gmsr. Each test skips, with
the reason, when its program is not installed (Debian: gdal-bin, octave, hdf5-tools)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from gmsr_cli.io import read_cube, write_cube
from gmsr_cli.io.cube import Cube

H, W, B = 7, 5, 31
WL = np.arange(400.0, 701.0, 10.0)


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (Debian: apt-get install gdal-bin octave hdf5-tools)")
    return path


def run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert done.returncode == 0, f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def cube_values() -> np.ndarray:
    """Distinct, spectrum-like values: every pixel and band differs, so a transposed or shifted
    read cannot pass, and values run a little outside [0, 1] as reconstructions do."""
    y, x, b = np.meshgrid(np.arange(H), np.arange(W), np.arange(B), indexing="ij")
    return (-0.03 + 1.08 * (y * W * B + x * B + b) / (H * W * B)).astype(np.float32)


def write_ours(path: Path, **options) -> np.ndarray:
    data = cube_values()
    write_cube(Cube(data=data, wavelengths_nm=WL, attrs={"camera": "srgb"}), path, **options)
    return data


def check_gmsr_reads(path: Path, data: np.ndarray, **kwargs) -> None:
    with read_cube(path, **kwargs) as cube:
        assert cube.shape == (H, W, B)
        np.testing.assert_allclose(cube.wavelengths_nm, WL)
        np.testing.assert_array_equal(cube.to_array(), data)


def envi_raw(img: Path) -> np.ndarray:
    """A float32 BIP ENVI data file that GDAL wrote, as (H, W, B)."""
    return np.fromfile(img, dtype="<f4").reshape(H, W, B)


# ------------------------------------------------------------------------------------- GDAL

@pytest.mark.parametrize("options", [{}, {"compression": "deflate"}, {"compression": "zstd"}, {"compression": "lzw"}],
                         ids=["plain", "deflate", "zstd", "lzw"])
def test_gdal_reads_our_tiff_with_wavelengths(tmp_path, options):
    need("gdal_translate")
    data = write_ours(tmp_path / "c.tif", **options)
    info = json.loads(run("gdalinfo", "-json", tmp_path / "c.tif"))
    assert len(info["bands"]) == B and info["size"] == [W, H]
    assert [float(b["metadata"][""]["wavelength"]) for b in info["bands"]] == list(WL)
    assert info["bands"][0]["description"] == "400 nm"
    # The values as GDAL decodes them, written out raw by GDAL itself.
    run("gdal_translate", "-q", "-of", "ENVI", tmp_path / "c.tif", tmp_path / "g.img")
    np.testing.assert_array_equal(envi_raw(tmp_path / "g.img"), data)


def test_gdal_reads_our_envi_with_wavelengths_and_fwhm(tmp_path):
    need("gdalinfo")
    write_ours(tmp_path / "c.hdr")
    info = json.loads(run("gdalinfo", "-json", tmp_path / "c.img"))
    assert len(info["bands"]) == B
    band = info["bands"][0]
    assert band["metadata"][""]["wavelength"] == "400" and band["metadata"][""]["wavelength_units"] == "nm"
    assert band["description"] == "Band 1 (400 nm)"  # not "400 nm (400 nm)"
    from spectral.io import envi  # GDAL 3.6 does not show fwhm; SPy does

    img = envi.open(str(tmp_path / "c.hdr"))
    assert img.bands.bandwidths == [10.0] * B and list(img.bands.centers) == list(WL)


def test_gdal_made_envi_reads_with_wavelengths(tmp_path):
    """gdal_translate -of ENVI puts the wavelengths of our TIFF in band names and .aux.xml, not
    in a `wavelength` field."""
    need("gdal_translate")
    data = write_ours(tmp_path / "c.tif")
    run("gdal_translate", "-q", "-of", "ENVI", tmp_path / "c.tif", tmp_path / "g.img")
    assert "wavelength =" not in (tmp_path / "g.hdr").read_text()
    check_gmsr_reads(tmp_path / "g.img", data)
    check_gmsr_reads(tmp_path / "g.hdr", data)
    (tmp_path / "g.img.aux.xml").unlink()  # band names ("400 nm") alone
    check_gmsr_reads(tmp_path / "g.hdr", data)


@pytest.mark.parametrize("creation", [["COMPRESS=LZW"], ["COMPRESS=ZSTD"], ["COMPRESS=DEFLATE", "PREDICTOR=3"],
                                      ["COMPRESS=LZW", "PREDICTOR=3", "TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"],
                                      ["INTERLEAVE=BAND", "COMPRESS=ZSTD", "PREDICTOR=3"]],
                         ids=["lzw", "zstd", "deflate-pred3", "lzw-pred3-tiled", "band-zstd-pred3"])
def test_gdal_made_geotiffs_read(tmp_path, creation):
    need("gdal_translate")
    data = write_ours(tmp_path / "c.tif")
    out = tmp_path / "g.tif"
    run("gdal_translate", "-q", *[a for c in creation for a in ("-co", c)], tmp_path / "c.tif", out)
    check_gmsr_reads(out, data)
    described = run(shutil.which("gmsr") or "gmsr", "info", "--json", out)
    assert json.loads(described)["kind"] == "cube"


def test_gdal_crop_of_our_tiff_reads_without_warning(tmp_path, caplog):
    need("gdal_translate")
    data = write_ours(tmp_path / "c.tif")
    run("gdal_translate", "-q", "-srcwin", "1", "2", "3", "4", tmp_path / "c.tif", tmp_path / "crop.tif")
    with caplog.at_level("WARNING"):
        with read_cube(tmp_path / "crop.tif") as cube:
            np.testing.assert_array_equal(cube.to_array(), data[2:6, 1:4])
            np.testing.assert_allclose(cube.wavelengths_nm, WL)
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]


def test_gdal_multidim_sees_wavelengths_and_transposes_our_hdf5(tmp_path):
    """The README's recipe: gdalmdimtranslate with transpose=[2,0,1] gives a 31-band GeoTIFF."""
    need("gdalmdimtranslate")
    data = write_ours(tmp_path / "c.h5")
    info = json.loads(run("gdalmdiminfo", tmp_path / "c.h5"))
    assert info["arrays"]["cube"]["dimensions"] == ["/y", "/x", "/wavelengths"]
    dims = {d["name"]: d for d in info["dimensions"]}
    assert dims["wavelengths"]["size"] == B and dims["wavelengths"]["indexing_variable"] == "/wavelengths"
    assert info["arrays"]["wavelengths"]["unit"] == "nm"
    out = tmp_path / "bands.tif"
    run("gdalmdimtranslate", tmp_path / "c.h5", out, "-array", "name=/cube,transpose=[2,0,1]")
    check_gmsr_reads(out, data)


# ------------------------------------------------------------------------------------ h5dump

def test_h5dump_decodes_our_threaded_chunks_without_plugins(tmp_path):
    need("h5dump")
    # 70 x 150: several chunk rows and columns, edge chunks on both sides.
    data = np.tile(cube_values(), (10, 30, 1))
    path = tmp_path / "c.h5"
    write_cube(Cube(data=data, wavelengths_nm=WL), path, threads=2)
    header = run("h5dump", "-H", "-A", path)
    filters = run("h5dump", "-p", "-H", "-d", "/cube", path)
    assert "PREPROCESSING SHUFFLE" in filters and "COMPRESSION DEFLATE { LEVEL 1 }" in filters
    assert "DIMENSION_LIST" in header and "CLASS" in header
    run("h5dump", "-d", "/cube", "-b", "LE", "-o", tmp_path / "raw.bin", path)
    raw = np.fromfile(tmp_path / "raw.bin", dtype="<f4").reshape(data.shape)
    np.testing.assert_array_equal(raw, data)
    wl = run("h5dump", "-d", "/wavelengths", "-A", "0", path)  # values only
    assert "400, 410, 420" in wl


# ------------------------------------------------------------------------------------ Octave

OCTAVE_SCRIPT = r"""
function dump(name, a)
  fid = fopen([name '.bin'], 'w'); fwrite(fid, a, 'single'); fclose(fid);
  fid = fopen([name '.txt'], 'w'); fprintf(fid, '%d ', size(a)); fclose(fid);
end
x = load('ours5.mat');  dump('o5_cube', x.cube);  dump('o5_bands', x.bands);
x = load('ours73.mat'); dump('o73_cube', x.cube); dump('o73_bands', x.bands);
x = load('ours.h5');    dump('oh5_cube', permute(x.cube, [3 2 1])); dump('oh5_wl', x.wavelengths);
hsi = single(reshape(0:(7*5*31-1), 7, 5, 31)) / (7*5*31);
wl = 400:10:700;
save('-v7', 'octave7.mat', 'hsi', 'wl');
save('-v6', 'octave6.mat', 'hsi', 'wl');
save('-hdf5', 'octave.h5', 'hsi', 'wl');
wavelengths = [400:10:700]';
save('-hdf5', 'octave_matrix.mat', 'hsi', 'wavelengths');
"""


def octave_dump(folder: Path, name: str) -> np.ndarray:
    size = [int(n) for n in (folder / f"{name}.txt").read_text().split()]
    return np.fromfile(folder / f"{name}.bin", dtype="<f4").reshape(size[::-1]).T


def test_octave_reads_ours_and_gmsr_reads_octaves(tmp_path):
    octave = shutil.which("octave-cli") or need("octave")
    data = write_ours(tmp_path / "ours5.mat", mat_version="5")
    write_ours(tmp_path / "ours73.mat", mat_version="7.3")
    write_ours(tmp_path / "ours.h5")
    (tmp_path / "check.m").write_text("1;\n" + OCTAVE_SCRIPT)
    run(octave, "--no-gui", "--quiet", "--no-init-file", "check.m", cwd=tmp_path)
    for prefix, wl_name in (("o5", "o5_bands"), ("o73", "o73_bands"), ("oh5", "oh5_wl")):
        np.testing.assert_array_equal(octave_dump(tmp_path, f"{prefix}_cube"), data)  # (H, W, B) in Octave
        np.testing.assert_allclose(octave_dump(tmp_path, wl_name).reshape(-1), WL)

    expected = (np.arange(H * W * B, dtype=np.float32).reshape(B, W, H).T / np.float32(H * W * B))
    for name in ("octave7.mat", "octave6.mat", "octave.h5", "octave_matrix.mat"):
        with read_cube(tmp_path / name) as cube:  # hsi is the only 3-D variable; wl the only wavelengths
            assert cube.shape == (H, W, B), name
            np.testing.assert_allclose(cube.wavelengths_nm, WL)
            np.testing.assert_array_equal(cube.to_array(), expected)
    with read_cube(tmp_path / "octave.h5", variable="hsi", wavelength_variable="wl") as cube:
        np.testing.assert_array_equal(cube.to_array(), expected)


# ----------------------------------------------------------------------- h5py, dimension scales

def test_h5py_file_with_dimension_scales_reads(tmp_path):
    """What netCDF-4 / xarray-style writers make: the band axis labelled by an attached scale."""
    data = cube_values()
    path = tmp_path / "scaled.h5"
    with h5py.File(path, "w") as f:
        refl = f.create_dataset("reflectance", data=data.transpose(2, 0, 1), chunks=(B, 4, 4), compression="gzip")
        lam = f.create_dataset("lambda", data=WL / 1000.0)
        lam.attrs["units"] = "um"
        lam.make_scale("lambda")
        refl.dims[0].attach_scale(lam)
    check_gmsr_reads(path, data)


def test_our_hdf5_dimension_scales_in_h5py(tmp_path):
    write_ours(tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5", "r") as f:
        cube = f["cube"]
        assert [d.label for d in cube.dims] == ["y", "x", "wavelengths"]
        np.testing.assert_allclose(cube.dims[2][0][()], WL)
        np.testing.assert_array_equal(cube.dims[0][0][()], np.arange(H))
        assert "reflectance" in cube.attrs["long_name"] and "outside [0, 1]" in cube.attrs["long_name"]


def test_xarray_names_the_axes_of_our_hdf5(tmp_path):
    """netCDF-4 readers see named dimensions with the wavelengths as a coordinate."""
    xr = pytest.importorskip("xarray", reason="xarray is not installed (pip install xarray h5netcdf)")
    pytest.importorskip("h5netcdf", reason="h5netcdf is not installed (pip install xarray h5netcdf)")
    data = write_ours(tmp_path / "c.h5")
    with xr.open_dataset(tmp_path / "c.h5", engine="h5netcdf") as ds:
        assert ds["cube"].dims == ("y", "x", "wavelengths")
        np.testing.assert_allclose(ds["wavelengths"].values, WL)
        assert ds["wavelengths"].attrs["units"] == "nm"
        assert float(ds["cube"].sel(wavelengths=550, y=3, x=2)) == data[3, 2, 15]
