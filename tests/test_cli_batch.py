"""`gmsr batch`: mirrored outputs, resume, failure summary and exit status, shards."""

import h5py
import pytest

OPTIONS = ["--tile", "16", "--overlap", "4", "--device", "cpu"]


@pytest.fixture
def batch(gmsr, weights_file):
    """`gmsr batch ARGS... --weights <random weights> OPTIONS`."""
    return lambda *args, code=None: gmsr("batch", *args, "--weights", weights_file, *OPTIONS, code=code)


@pytest.fixture
def make_inputs(photos):
    """Write 12 x 20 photos under root at the given relative names, seeds 0, 1, 2..."""
    return lambda root, names: [photos.write(root / name, 12, 20, i) for i, name in enumerate(names)]


def outputs(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_batch_mirrors_and_resumes(tmp_path, batch, make_inputs):
    make_inputs(tmp_path / "in", ["a.png", "sub/b.jpg", "sub/deeper/c.bmp", "sub/deeper/d.webp"])
    result = batch(tmp_path / "in", "-o", tmp_path / "out", code=0)
    assert outputs(tmp_path / "out") == ["a.h5", "sub/b.h5", "sub/deeper/c.h5", "sub/deeper/d.h5"]
    with h5py.File(tmp_path / "out" / "sub" / "b.h5", "r") as f:
        assert f["cube"].shape == (12, 20, 31) and f.attrs["source_image"].endswith("b.jpg")
    assert "done" in result.output and "4" in result.output
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.h5")}
    # A second run finds everything done and writes nothing; a new photo alone is processed.
    make_inputs(tmp_path / "in" / "sub", ["e.png"])
    again = batch(tmp_path / "in", "-o", tmp_path / "out", code=0)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (tmp_path / "out" / "sub" / "e.h5").exists()
    rows = [line.replace("│", " ").split() for line in again.output.splitlines()]
    summary = {row[0]: row[1] for row in rows if row and row[0] in ("done", "skipped", "failed")}
    assert summary == {"done": "1", "skipped": "4", "failed": "0"}


def test_one_bad_photo_does_not_stop_the_batch(tmp_path, batch, make_inputs):
    make_inputs(tmp_path / "in", ["a.png", "b.png", "c/d.png"])
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = batch(tmp_path / "in", "-o", tmp_path / "out", "--format", "envi", code=1)
    assert outputs(tmp_path / "out") == ["a.hdr", "a.img", "b.hdr", "b.img", "c/d.hdr", "c/d.img"]
    table_rows = [line for line in result.output.splitlines() if "│" in line and "broken.png" in line]
    assert len(table_rows) == 1 and "not an image" in table_rows[0]  # the summary's failure table
    last = result.output.strip().splitlines()[-1]
    assert last == "Error: 1 of 4 photo(s) failed (listed above)"
    assert "Traceback" not in result.output


def test_shards_split_the_batch(tmp_path, batch, make_inputs):
    names = [f"d{i % 2}/p{i}.png" for i in range(7)]
    make_inputs(tmp_path / "in", names)
    seen = []
    for i in (1, 2, 3):
        out = tmp_path / f"out{i}"
        batch(tmp_path / "in", "-o", out, "--shard", f"{i}/3", "--format", "npy", code=0)
        seen += outputs(out)
    assert sorted(seen) == sorted(n.replace(".png", ".npy") for n in names)
    assert len(seen) == len(set(seen))


def test_dry_run_and_globs(tmp_path, batch, make_inputs):
    make_inputs(tmp_path / "in", ["x/a.png", "x/b.jpg", "y/c.png"])
    result = batch(str(tmp_path / "in" / "**" / "*.png"), "-o", tmp_path / "out", "--dry-run", code=0)
    lines = result.output.strip().splitlines()
    assert lines[-1] == "2 photo(s)"
    assert lines[0].endswith(str(tmp_path / "out" / "x" / "a.h5"))
    assert not (tmp_path / "out").exists()
