"""The Python API: reconstruction to files, interruption safety, batch plans and runs, previews, descriptions."""

import os

import h5py
import numpy as np
import pytest
from PIL import Image

from gmsr_cli import api
from gmsr_cli.colour import correct_cube
from gmsr_cli.errors import CubeError, GmsrError, OutputExistsError
from gmsr_cli.io import read_cube
from gmsr_cli.spectra import WAVELENGTHS_NM, render_rgb
from gmsr_cli.tiling import reconstruct_array

H, W = 24, 20


@pytest.fixture(scope="module")
def model(weights_file):
    return api.load_model(weights_file, device="cpu")


@pytest.fixture
def photo(tmp_path, photos):
    return photos.write(tmp_path / "photo.png", H, W)


def test_reconstruct_file_writes_the_streamed_cube_with_provenance(model, photo, tmp_path):
    out = tmp_path / "cube.h5"
    result = api.reconstruct_file(photo, out, model=model, tile_px=16, overlap_px=4)
    assert result.output_paths == [out] and (result.height, result.width) == (H, W)
    pixels = np.asarray(Image.open(photo))
    # the random weights' card has no exact_colour entry: on, as for every sRGB-camera weights
    expected = correct_cube(reconstruct_array(model.module, pixels.astype(np.float32) / np.float32(255), tile_px=16,
                                              overlap_px=4), pixels, "srgb")
    with h5py.File(out, "r") as f:
        assert np.array_equal(f["cube"][...], expected)
        np.testing.assert_array_equal(f["wavelengths"][...], WAVELENGTHS_NM)
        attrs = dict(f.attrs)
    assert attrs["weights"] == "test-random-init" and len(attrs["weights_sha256"]) == 64
    assert attrs["source_image"] == str(photo) and attrs["camera"] == "srgb"
    assert (attrs["tile_px"], attrs["overlap_px"], attrs["tta"], attrs["exact_colour"]) == (16, 4, 0, 1)
    assert "gmsr_cli_version" in attrs and "created" in attrs
    assert sorted(os.listdir(tmp_path)) == ["cube.h5", "photo.png"]  # no temporaries left


def test_reconstruct_image_matches_the_file(model, photo, tmp_path):
    cube = api.reconstruct_image(photo, model=model, tile_px=16, overlap_px=4)
    api.reconstruct_file(photo, tmp_path / "c.npy", model=model, tile_px=16, overlap_px=4)
    assert cube.shape == (H, W, 31) and cube.dtype == np.float32
    assert np.array_equal(np.load(tmp_path / "c.npy"), cube)


def test_existing_output_is_kept_without_overwrite(model, photo, tmp_path):
    out = tmp_path / "cube.h5"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        api.reconstruct_file(photo, out, model=model, tile_px=16, overlap_px=4)
    assert out.read_bytes() == b"precious"
    api.reconstruct_file(photo, out, model=model, tile_px=16, overlap_px=4, overwrite=True)
    with h5py.File(out, "r") as f:
        assert f["cube"].shape == (H, W, 31)


class Stop(Exception):
    pass


@pytest.mark.parametrize("name", ["cube.h5", "cube.hdr", "cube.mat", "cube.tif", "cube.npy"])
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, Stop])
def test_an_interrupted_run_leaves_nothing_and_keeps_the_old_output(model, photo, tmp_path, name, interrupt):
    out = tmp_path / name
    finals = api.output_paths(out, None)
    for path in finals:
        path.write_bytes(b"old " + path.name.encode())
    before = sorted(os.listdir(tmp_path))

    # --tile 8: 2 x 2 tiles (a 24 x 20 photo is one tile at --tile 16, whose band reaches 32 px).
    def stop_after_two(done, total):
        assert total > 2
        if done == 2:
            raise interrupt()

    with pytest.raises(interrupt):
        api.reconstruct_file(photo, out, model=model, tile_px=8, overlap_px=4, overwrite=True,
                             progress=stop_after_two)
    assert sorted(os.listdir(tmp_path)) == before
    for path in finals:
        assert path.read_bytes() == b"old " + path.name.encode()
    for path in finals:
        path.unlink()
    with pytest.raises(interrupt):
        api.reconstruct_file(photo, out, model=model, tile_px=8, overlap_px=4, progress=stop_after_two)
    assert sorted(os.listdir(tmp_path)) == ["photo.png"]


def make_tree(root, photos):
    paths = [photos.write(root / name, H, W, seed) for seed, name in
             enumerate(["top.png", "a/one.jpg", "a/b/two.PNG", ".hidden/no.png"])]
    (root / "a" / "notes.txt").write_text("not a photo")
    return paths


def test_batch_plan_mirrors_the_tree(tmp_path, photos):
    make_tree(tmp_path / "in", photos)
    items = api.batch_plan([tmp_path / "in"], tmp_path / "out", format="hdf5")
    pairs = [(i.input_path.relative_to(tmp_path / "in").as_posix(),
              i.output_path.relative_to(tmp_path / "out").as_posix()) for i in items]
    assert pairs == [("a/b/two.PNG", "a/b/two.h5"), ("a/one.jpg", "a/one.h5"), ("top.png", "top.h5")]
    envi = api.batch_plan([tmp_path / "in"], tmp_path / "out", format="envi")
    assert [i.output_path.suffix for i in envi] == [".hdr"] * 3


def test_batch_plan_globs_files_and_its_own_output_folder(tmp_path, photos):
    make_tree(tmp_path / "in", photos)
    items = api.batch_plan([str(tmp_path / "in" / "**" / "*.jpg"), tmp_path / "in" / "top.png"],
                           tmp_path / "out", format="npy")
    assert sorted(i.output_path.relative_to(tmp_path / "out").as_posix() for i in items) == ["a/one.npy", "top.npy"]
    # Outputs written inside the input folder (here as TIFF, a photo extension) are never inputs.
    inside = tmp_path / "in" / "cubes"
    photos.write(inside / "a" / "old.tif", H, W)
    items = api.batch_plan([tmp_path / "in"], inside, format="tiff")
    assert len(items) == 3 and all("cubes" not in i.input_path.parts for i in items)
    # Written beside the photos (the output folder is the input folder): every photo is an input.
    assert len(api.batch_plan([tmp_path / "in"], tmp_path / "in", format="hdf5")) == 4


def test_batch_plan_errors(tmp_path, photos):
    (tmp_path / "in").mkdir()
    with pytest.raises(GmsrError, match="no photos"):
        api.batch_plan([tmp_path / "in"], tmp_path / "out")
    with pytest.raises(GmsrError, match="not found"):
        api.batch_plan([tmp_path / "missing"], tmp_path / "out")
    photos.write(tmp_path / "in" / "x.png", H, W)
    photos.write(tmp_path / "in" / "x.jpg", H, W)
    with pytest.raises(GmsrError, match="both be written"):
        api.batch_plan([tmp_path / "in"], tmp_path / "out")


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "abc", "1-4", "2"])
def test_bad_shards(text):
    with pytest.raises(GmsrError, match="--shard"):
        api.parse_shard(text)


def test_shards_cover_every_photo_exactly_once(tmp_path, photos):
    for i in range(11):
        photos.write(tmp_path / "in" / f"d{i % 3}" / f"p{i}.png", H, W, i)
    everything = [i.input_path for i in api.batch_plan([tmp_path / "in"], tmp_path / "out")]
    assert len(everything) == 11
    for n in (1, 2, 3, 4, 11, 12):
        parts = [api.batch_plan([tmp_path / "in"], tmp_path / "out", shard=f"{i}/{n}") for i in range(1, n + 1)]
        seen = [item.input_path for part in parts for item in part]
        assert sorted(seen) == sorted(everything) and len(seen) == len(set(seen))
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_run_batch_resumes_and_records_failures(model, tmp_path, photos):
    make_tree(tmp_path / "in", photos)
    (tmp_path / "in" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    items = api.batch_plan([tmp_path / "in"], tmp_path / "out", format="envi")
    results = api.run_batch(items, model=model, tile_px=16, overlap_px=4, format="envi")
    assert [r.status for r in results].count("done") == 3
    [failed] = [r for r in results if r.status == "failed"]
    assert failed.item.input_path.name == "broken.png" and "broken.png" in failed.message
    assert not (tmp_path / "out" / "a" / "broken.hdr").exists()
    # An output whose rename was cut short (.img there, .hdr not) is redone, the others skipped.
    (tmp_path / "out" / "top.hdr").unlink()
    again = api.run_batch(items, model=model, tile_px=16, overlap_px=4, format="envi")
    status = {r.item.input_path.name: r.status for r in again}
    assert status == {"two.PNG": "skipped", "one.jpg": "skipped", "top.png": "done", "broken.png": "failed"}
    with read_cube(tmp_path / "out" / "top.hdr") as cube:
        assert cube.shape == (H, W, 31)


def test_run_batch_loads_no_model_when_everything_is_done(tmp_path, photo):
    items = api.batch_plan([photo], tmp_path / "out")
    (tmp_path / "out").mkdir()
    items[0].output_path.write_bytes(b"done before")
    results = api.run_batch(items, weights=tmp_path / "no-such-weights.safetensors")
    assert [r.status for r in results] == ["skipped"]


@pytest.fixture
def cube_file(tmp_path, cubes):
    """A smooth 31-band cube with known values, written by the io layer."""
    cube = cubes.array(H, W, seed=5)
    return cubes.write(tmp_path / "cube.h5", cube, attrs={"note": "test"}), cube


def test_true_colour_preview_is_the_srgb_rendering(cube_file):
    path, cube = cube_file
    with read_cube(path) as c:
        assert np.array_equal(api.preview_image(c), render_rgb(cube, "srgb"))
        bright = api.preview_image(c, exposure="auto")
        assert bright.mean() > render_rgb(cube, "srgb").mean()
        assert np.array_equal(api.preview_image(c, exposure="2"), render_rgb(cube * 2, "srgb"))


def test_band_preview_is_stretched_grey_or_colour_mapped(cube_file):
    path, cube = cube_file
    with read_cube(path) as c:
        grey = api.preview_image(c, band="560nm", label=False)
        assert grey.shape == (H, W) and grey.dtype == np.uint8
        assert grey.min() == 0 and grey.max() == 255  # the 1-99 % stretch reaches both ends
        band = cube[:, :, 16]
        assert np.corrcoef(grey.ravel(), band.ravel())[0, 1] > 0.99
        for spelling in ("560", "560 nm", 560.0, 16, "16"):
            assert np.array_equal(api.preview_image(c, band=spelling, label=False), grey)
        coloured = api.preview_image(c, band="560nm", cmap="viridis", label=False)
        assert coloured.shape == (H, W, 3)
        assert np.array_equal(coloured, api.colormap("viridis")[grey])
        labelled = api.preview_image(c, band="560nm")
        assert not np.array_equal(labelled, grey) and np.array_equal(labelled[-4:], grey[-4:])
        false = api.preview_image(c, rgb=["650", "560nm", "5"], label=False)
        assert false.shape == (H, W, 3)
        assert np.array_equal(false[:, :, 1], grey) and np.array_equal(
            false[:, :, 2], api.preview_image(c, band=5, label=False))


@pytest.mark.parametrize("kwargs,match", [
    ({"band": "900nm"}, "outside"), ({"band": "350"}, "outside"), ({"band": "abc"}, "not understood"),
    ({"band": "560", "rgb": ["1", "2", "3"]}, "either"), ({"rgb": ["1", "2"]}, "three"),
    ({"band": "560", "stretch": (50, 10)}, "stretch"), ({"stretch": (1, 99)}, "true colour"),
    ({"exposure": "-1"}, "exposure"), ({"band": 3, "cmap": "jet"}, "colour map"),
])
def test_preview_errors(cube_file, kwargs, match):
    with read_cube(cube_file[0]) as c:
        with pytest.raises(GmsrError, match=match):
            api.preview_image(c, **kwargs)


def test_colormaps():
    for name in api.CMAP_NAMES:
        table = api.colormap(name)
        assert table.shape == (256, 3) and table.dtype == np.uint8
    assert api.colormap("viridis")[0].tolist() == [0x44, 0x01, 0x54]
    assert api.colormap("viridis")[255].tolist() == [0xfd, 0xe7, 0x25]
    assert np.array_equal(api.colormap("gray")[:, 0], np.arange(256))


def test_render_needs_the_31_band_grid(tmp_path, cubes):
    path = cubes.write(tmp_path / "five.h5", np.full((4, 5, 5), 0.5, np.float32), wavelengths=[450, 500, 550, 600, 650])
    with pytest.raises(CubeError, match="31 bands"):
        api.render_file(path, tmp_path / "x.png")
    assert api.preview_file(path, tmp_path / "b.png", band="550nm").exists()


def test_describe_cube_and_weights(cube_file, weights_file, photo):
    path, cube = cube_file
    d = api.describe_file(path)
    assert d["kind"] == "cube" and d["format"] == "hdf5" and d["shape"] == [H, W, 31]
    assert d["wavelengths_nm"] == WAVELENGTHS_NM.tolist() and d["dtype"] == "float32"
    assert d["value_min"] == pytest.approx(float(cube.min())) and d["value_max"] == pytest.approx(float(cube.max()))
    assert d["attrs"]["note"] == "test"
    w = api.describe_file(weights_file)
    assert w["kind"] == "weights" and w["fits_gmsr_net"] and w["parameters"] == 44_980
    assert w["name"] == "test-random-init" and w["card"]["camera"] == "srgb"
    p = api.describe_file(photo)
    assert (p["kind"], p["height"], p["width"]) == ("photo", H, W)
