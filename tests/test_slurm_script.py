"""examples/slurm_batch.sh run as Slurm would run two array tasks: each does its own shard, together
every photo once, and a rerun of a task skips its finished cubes (resume)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gmsr_cli.model.gmsr import GMSRNet
from gmsr_cli.model.weights import save_weights

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "slurm_batch.sh"


def run_task(task: int, first: int, count: int, photos: Path, out: Path, weights: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_MIN=str(first),
               SLURM_ARRAY_TASK_COUNT=str(count), SLURM_CPUS_PER_TASK="1")
    env.pop("SLURM_ARRAY_JOB_ID", None)
    return subprocess.run(["bash", str(SCRIPT), str(photos), str(out), "--weights", str(weights), "--device", "cpu",
                           "--tile", "0"], capture_output=True, text=True, env=env, timeout=300)


def test_array_tasks_split_the_photos_and_resume(tmp_path):
    if shutil.which("bash") is None or shutil.which("gmsr") is None:
        pytest.skip("needs bash and the gmsr command on PATH")
    torch.manual_seed(0)
    weights = save_weights(GMSRNet(), tmp_path / "w.safetensors", card={"name": "t", "camera": "srgb"})
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["a.png", "b.png", "sub/c.png"]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(photos / name)
    out = tmp_path / "cubes"

    done = []
    for task in (0, 1):  # --array=0-1: shards 1/2 and 2/2
        result = run_task(task, 0, 2, photos, out, weights)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"shard {task + 1}/2" in result.stdout
        done.append(sorted(p.relative_to(out).as_posix() for p in out.rglob("*.h5")))
    assert done[0] and len(done[1]) == 3  # the first task did part, both together all of it
    assert sorted(p.replace(".h5", ".png") for p in done[1]) == sorted(names)
    assert not [p for p in out.rglob("*") if ".partial" in p.name]

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.h5")}
    again = run_task(0, 0, 2, photos, out, weights)
    assert again.returncode == 0, again.stderr
    assert "skipped" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.h5")} == before


def test_script_refuses_to_run_outside_an_array(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    result = subprocess.run(["bash", str(SCRIPT), "in", "out"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0 and "sbatch --array" in result.stderr
