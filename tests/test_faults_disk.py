"""Write failures of the file system (no space left, file size limit, read-only folder) in every
cube format: one line naming the path and the cause, no file left under the final name or any
temporary, an existing output kept, never a crash. The failures are real ones from the OS: a
tiny tmpfs that fills up (where mounting is allowed) and RLIMIT_FSIZE (everywhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gmsr_cli.errors import DiskFullError, OutputError
from gmsr_cli.io import open_cube_writer, write_cube
from gmsr_cli.io.cube import Cube
from gmsr_cli.model.gmsr import GMSRNet
from gmsr_cli.model.weights import save_weights

REPO_ROOT = Path(__file__).resolve().parents[1]
WL = np.arange(400.0, 701.0, 10.0)
H, W = 64, 64
OLD = b"an existing output that a failed write must keep"
# Every writer, MAT in both versions (v7.3 is HDF5 inside).
CASES = [("cube.h5", {}), ("cube.hdr", {}), ("cube.mat", {}), ("cube.mat", {"mat_version": "7.3"}),
         ("cube.tif", {}), ("cube.npy", {})]
CASE_IDS = ["hdf5", "envi", "mat5", "mat73", "tiff", "npy"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cube() -> np.ndarray:
    # Noise: compresses no better than it must, so the compressed formats fill the disk too.
    return np.random.default_rng(0).random((H, W, WL.size), dtype=np.float32)


def _finals(folder: Path, name: str) -> list[Path]:
    from gmsr_cli.io.registry import output_paths

    return output_paths(folder / name)


def _put_old(folder: Path, name: str) -> list[Path]:
    finals = _finals(folder, name)
    for p in finals:
        p.write_bytes(OLD)
    return finals


def _assert_kept(folder: Path, finals: list[Path], extra: tuple[str, ...] = ()) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted([p.name for p in finals] + list(extra))
    for p in finals:
        assert p.read_bytes() == OLD


# In a child process, whose file size limit (RLIMIT_FSIZE) makes the OS refuse writes past
# LIMIT bytes (EFBIG once SIGXFSZ is ignored): a real failure through every library.
FSIZE_CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    import numpy as np
    from gmsr_cli.errors import GmsrError
    from gmsr_cli.io import write_cube
    from gmsr_cli.io.cube import Cube
    path, limit, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    cube = np.random.default_rng(0).random((64, 64, 31), dtype=np.float32)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        write_cube(Cube(cube, np.arange(400.0, 701.0, 10.0)), path, overwrite=True, **options)
    except GmsrError as exc:
        print(type(exc).__name__, exc)
        sys.exit(1)
    print("written")
""")


@pytest.mark.parametrize("name, options", CASES, ids=CASE_IDS)
def test_file_size_limit_mid_write_and_at_close(tmp_path, name, options):
    ref = tmp_path / "ref"
    ref.mkdir()
    write_cube(Cube(_cube(), WL), ref / name, **options)
    size = max(p.stat().st_size for p in _finals(ref, name))
    child = tmp_path / "child.py"
    child.write_text(FSIZE_CHILD)
    # A third of the way through the rows, then the very last bytes (the flush / close).
    for limit in (size // 3, size - 1):
        out = tmp_path / f"out{limit}"
        out.mkdir()
        finals = _put_old(out, name)
        done = subprocess.run([sys.executable, str(child), str(out / name), str(limit), json.dumps(options)],
                              capture_output=True, text=True, env=_env(), timeout=120)
        assert done.returncode == 1, (limit, done.stdout, done.stderr)
        assert done.stdout.startswith("OutputError ") and "too large" in done.stdout, done.stdout
        assert str(out / name).rsplit(".", 1)[0] in done.stdout
        assert done.stderr == "", done.stderr  # no traceback, no "Exception ignored"
        _assert_kept(out, finals)


def test_read_only_folder_is_one_line_naming_the_folder(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the tmpfs test covers a read-only mount")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="no permission to write in"):
            write_cube(Cube(_cube(), WL), folder / "cube.h5")
    finally:
        folder.chmod(0o755)


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MB tmpfs mounted on a fresh folder (root with mount rights only; skips otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write zeros to ``path`` until the file system is full."""
    with open(path, "wb", buffering=0) as fh:
        block = b"\0" * 65536
        try:
            while True:
                fh.write(block)
        except OSError:
            pass
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass


@pytest.mark.parametrize("name, options", CASES, ids=CASE_IDS)
def test_disk_fills_during_the_write(tmpfs, name, options):
    finals = _put_old(tmpfs, name)
    cube = _cube()
    with pytest.raises(DiskFullError) as info:
        with open_cube_writer(tmpfs / name, H, W, WL, overwrite=True, **options) as writer:
            writer.write_rows(0, cube[: H // 2])
            _fill(tmpfs / "filler")  # someone else fills the disk meanwhile
            writer.write_rows(H // 2, cube[H // 2:])
    message = str(info.value)
    assert message.startswith(f"no space left on {tmpfs} while writing {finals[0].name}"), message
    _assert_kept(tmpfs, finals, extra=("filler",))


def test_too_big_for_the_free_space_is_refused_before_writing(tmpfs):
    with pytest.raises(DiskFullError, match=r"not enough space on .* it needs about 4\.1 MB and .* are free"):
        write_cube(Cube(np.zeros((128, 256, 31), np.float32), WL), tmpfs / "cube.npy")
    assert list(tmpfs.iterdir()) == []


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray((rng.random((96, 96, 3)) * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    save_weights(GMSRNet(), tmp_path / "w.safetensors", card={"name": "test-random-init", "camera": "srgb"})
    return folder


def test_gmsr_on_a_full_disk_is_one_line_and_no_crash(tmpfs, photos):
    # The reproduction: the default .h5 output onto a disk with too little room.
    _fill(tmpfs / "filler")
    os.unlink(tmpfs / "filler")
    with open(tmpfs / "filler", "wb") as fh:
        fh.write(b"\0" * (1024 * 1024 + 512 * 1024))  # leave ~0.5 MB of the 2 MB
    done = subprocess.run([sys.executable, "-m", "gmsr_cli.cli.main", "reconstruct", str(photos / "p0.png"),
                           "-o", str(tmpfs / "c.h5"), "--weights", str(photos.parent / "w.safetensors"), "-q"],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: no space left on {tmpfs} while writing c.h5"), lines
    assert sorted(p.name for p in tmpfs.iterdir()) == ["filler"]


def test_batch_onto_a_full_disk_prints_its_summary_and_stops(tmpfs, photos):
    with open(tmpfs / "filler", "wb") as fh:
        fh.write(b"\0" * (1024 * 1024 + 700 * 1024))  # room for about one cube of 1.1 MB, not more
    done = subprocess.run([sys.executable, "-m", "gmsr_cli.cli.main", "batch", str(photos), "-o", str(tmpfs),
                           "--weights", str(photos.parent / "w.safetensors"), "-q"],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 1
    assert "gmsr batch" in done.stdout and "not tried" in done.stdout, done.stdout  # the summary
    assert "disk is full" in done.stderr and "Traceback" not in done.stderr, done.stderr
    left = sorted(p.name for p in tmpfs.iterdir())
    assert all(".partial" not in n for n in left), left
    # Fewer photos were tried than there are: it stopped at the first full-disk failure.
    assert done.stdout.count("no space left") + done.stdout.count("not enough space") == 1, done.stdout


def test_read_only_mount_is_one_line(tmpfs):
    remount = subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True, text=True)
    if remount.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
    with pytest.raises(OutputError, match=f"cannot write {tmpfs / 'cube.h5'}: {tmpfs} is on a read-only file system"):
        write_cube(Cube(_cube(), WL), tmpfs / "cube.h5")


def test_batch_stops_when_not_even_a_folder_can_be_made(tmpfs, photos):
    # The same tmpfs remounted with no free inode: space for data, none for the mirrored folder.
    remount = subprocess.run(["mount", "-o", "remount,nr_inodes=1", str(tmpfs)], capture_output=True, text=True)
    if remount.returncode != 0:
        pytest.skip(f"cannot limit the tmpfs's inodes: {remount.stderr.strip()}")
    (photos / "sub").mkdir()
    for name in ("p0.png", "p1.png", "p2.png", "p3.png"):
        (photos / name).rename(photos / "sub" / name)
    from gmsr_cli.batch import batch_plan, run_batch

    results = run_batch(batch_plan([photos], tmpfs), weights=photos.parent / "w.safetensors")
    statuses = [r.status for r in results]
    assert statuses[0] == "failed" and set(statuses[1:]) == {"not tried"}, [(r.status, r.message) for r in results]
    assert results[0].message.startswith(f"no space left on {tmpfs} while writing p0.h5"), results[0].message
