"""`gmsr batch DIR` without -o: each cube beside its photo, resumable, never over a photo."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gmsr_cli.batch import batch_plan
from gmsr_cli.cli.main import cli
from gmsr_cli.errors import GmsrError
from gmsr_cli.io import read_cube
from gmsr_cli.model.gmsr import GMSRNet
from gmsr_cli.model.weights import save_weights


@pytest.fixture
def shoot(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "shoot" / "day2").mkdir(parents=True)
    for rel in ("shoot/a.png", "shoot/day2/b.jpg"):
        Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / rel)
    save_weights(GMSRNet(), tmp_path / "w.safetensors", card={"name": "test-random-init", "camera": "srgb"})
    return tmp_path


def test_batch_without_output_folder_writes_beside_each_photo_and_resumes(shoot):
    runner = CliRunner()
    args = ["batch", str(shoot / "shoot"), "--weights", str(shoot / "w.safetensors"), "-q"]
    done = runner.invoke(cli, args)
    assert done.exit_code == 0, done.output
    for rel in ("shoot/a.h5", "shoot/day2/b.h5"):
        with read_cube(shoot / rel) as cube:
            assert cube.shape == (24, 32, 31)
    (shoot / "shoot" / "a.h5").unlink()  # as if the first run had been stopped there
    stamp = (shoot / "shoot" / "day2" / "b.h5").stat().st_mtime_ns
    again = runner.invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert (shoot / "shoot" / "a.h5").exists()
    assert (shoot / "shoot" / "day2" / "b.h5").stat().st_mtime_ns == stamp  # skipped, not redone
    assert "skipped" in again.output


def test_with_output_folder_the_tree_is_still_mirrored(shoot):
    items = batch_plan([shoot / "shoot"], shoot / "cubes")
    assert sorted(i.output_path.relative_to(shoot).as_posix() for i in items) == ["cubes/a.h5", "cubes/day2/b.h5"]


def test_a_cube_never_goes_over_its_photo(shoot):
    photo = shoot / "shoot" / "c.tif"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    with pytest.raises(GmsrError, match="over the photo itself"):
        batch_plan([shoot / "shoot"], None, format="tiff")
    done = CliRunner().invoke(cli, ["reconstruct", str(photo), "--format", "tiff", "--overwrite"])
    assert done.exit_code == 1 and "over the photo itself" in done.output
    assert photo.stat().st_size < 1000  # still the photo
