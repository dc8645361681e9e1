"""A cube format that disagrees with the file's extension is an error; foreseeable failures are
worded as what happened, not as "unexpected"."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gmsr_cli.cli.main import cli
from gmsr_cli.errors import FormatError, explain
from gmsr_cli.io import read_cube, write_cube
from gmsr_cli.io.cube import Cube

WL = np.arange(400.0, 701.0, 10.0)


def _cube() -> Cube:
    return Cube(np.random.default_rng(0).random((8, 9, 31), dtype=np.float32), WL)


@pytest.mark.parametrize("name, format", [("x.h5", "npy"), ("x.npy", "hdf5"), ("x.tif", "envi"), ("x.mat", "tiff")])
def test_format_contradicting_the_extension_is_refused(tmp_path, name, format):
    with pytest.raises(FormatError, match=f"--format {format} disagrees with the extension"):
        write_cube(_cube(), tmp_path / name, format=format)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, format", [("x.img", "envi"), ("x.hdf5", "hdf5"), ("x.cube", "npy"), ("x", "tiff")])
def test_format_agreeing_with_or_filling_in_the_extension_is_written(tmp_path, name, format):
    write_cube(_cube(), tmp_path / name, format=format)
    written = [p for p in tmp_path.iterdir() if p.suffix != ".hdr"][0]
    with read_cube(written, format=format) as cube:
        assert cube.shape == (8, 9, 31)


def test_gmsr_reconstruct_refuses_npy_named_h5_before_any_work(tmp_path):
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    done = CliRunner().invoke(cli, ["reconstruct", str(photo), "-o", str(tmp_path / "x.h5"), "--format", "npy",
                                    "--weights", str(tmp_path / "missing.safetensors")])
    # The format is refused before the (missing) weights are even looked at.
    assert done.exit_code == 1 and "disagrees with the extension .h5" in done.output, done.output
    assert not (tmp_path / "x.h5").exists()


def test_foreseeable_python_errors_are_worded_as_such(tmp_path):
    assert explain(MemoryError()).startswith("out of memory")
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "c.h5"))
    assert explain(full) == f"{tmp_path / 'c.h5'}: no space left on the disk; free some space or write elsewhere"
    assert "read-only" in explain(OSError(errno.EROFS, "Read-only file system"))
    assert explain(ValueError("a bug")) is None
