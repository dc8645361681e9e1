"""Atomic outputs: nothing half-written under a final name, existing files kept unless --overwrite."""

from __future__ import annotations

import numpy as np
import pytest

from gmsr_cli.errors import GmsrError, OutputExistsError
from gmsr_cli.io import open_cube_writer, read_cube
from gmsr_cli.io.atomic import atomic_output


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success_renames_into_place_and_leaves_no_temporaries(tmp_path):
    final = tmp_path / "out.txt"
    with atomic_output(final) as files:
        assert files.path.parent == tmp_path and files.path != final
        files.path.write_text("done")
        scratch = files.scratch(".rows")
        scratch.write_text("scratch")
        assert not final.exists()
    assert final.read_text() == "done"
    assert names(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exception_midway_leaves_nothing(tmp_path, error):
    with pytest.raises(type(error)):
        with atomic_output(tmp_path / "out.txt") as files:
            files.path.write_text("half")
            files.scratch(".rows").write_text("scratch")
            raise error
    assert names(tmp_path) == []


def test_existing_file_is_kept_without_overwrite(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(OutputExistsError) as info:
        with atomic_output(final):
            pytest.fail("the body must not run")
    assert str(final) in str(info.value) and "--overwrite" in str(info.value)
    assert final.read_text() == "old"


def test_overwrite_replaces_only_after_success(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(final, overwrite=True) as files:
            files.path.write_text("new but broken")
            assert final.read_text() == "old"
            raise RuntimeError("failed")
    assert final.read_text() == "old" and names(tmp_path) == ["out.txt"]
    with atomic_output(final, overwrite=True) as files:
        files.path.write_text("new")
        assert final.read_text() == "old"
    assert final.read_text() == "new" and names(tmp_path) == ["out.txt"]


def test_two_file_output_renamed_together(tmp_path):
    finals = [tmp_path / "cube.img", tmp_path / "cube.hdr"]
    with atomic_output(finals) as files:
        # temporaries share a base name, as ENVI's header/data pairing needs
        assert files.paths[0].with_suffix("") == files.paths[1].with_suffix("")
        assert [p.suffix for p in files.paths] == [".img", ".hdr"]
        for p in files.paths:
            p.write_text(p.suffix)
    assert names(tmp_path) == ["cube.hdr", "cube.img"]
    with pytest.raises(RuntimeError):
        with atomic_output([tmp_path / "b.img", tmp_path / "b.hdr"]) as files:
            files.paths[0].write_text("data")
            raise RuntimeError
    assert names(tmp_path) == ["cube.hdr", "cube.img"]


def test_missing_temporary_is_an_error(tmp_path):
    with pytest.raises(GmsrError, match="was not written"):
        with atomic_output([tmp_path / "a.img", tmp_path / "a.hdr"]) as files:
            files.paths[0].write_text("data only")
    assert names(tmp_path) == []


def test_bad_destinations(tmp_path):
    with pytest.raises(GmsrError, match="does not exist"):
        with atomic_output(tmp_path / "no" / "such" / "out.txt"):
            pass
    (tmp_path / "dir.h5").mkdir()
    with pytest.raises(GmsrError, match="is a folder"):
        with atomic_output(tmp_path / "dir.h5", overwrite=True):
            pass


def test_output_created_meanwhile_is_not_clobbered(tmp_path):
    final = tmp_path / "out.txt"
    with pytest.raises(OutputExistsError):
        with atomic_output(final) as files:
            files.path.write_text("ours")
            final.write_text("someone else's")
    assert final.read_text() == "someone else's" and names(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("name,options", [
    ("c.h5", {}), ("c.hdr", {}), ("c.mat", {"mat_version": "5"}), ("c.mat", {"mat_version": "7.3"}),
    ("c.tif", {}), ("c.npy", {}),
], ids=["hdf5", "envi", "mat5", "mat73", "tiff", "npy"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_cube_writer_interrupted_midway(tmp_path, cubes, name, options, error):
    old = cubes.array(8, 6)
    cubes.write(tmp_path / name, old, **options)
    before = names(tmp_path)
    with pytest.raises(error):
        with open_cube_writer(tmp_path / name, 8, 6, cubes.wavelengths, overwrite=True, **options) as writer:
            writer.write_rows(0, cubes.array(3, 6, seed=1))
            raise error()
    assert names(tmp_path) == before  # no temporaries, no scratch files
    with read_cube(tmp_path / name) as cube:
        np.testing.assert_array_equal(cube.to_array(), old)
