"""A few real training steps on tiny crops: loss goes down, checkpoints resume, the card is written."""

import json

import numpy as np
import pytest
import torch

from gmsr_cli.model.weights import read_weights
from gmsr_cli.train.loop import TrainConfig, loss_fn, train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, shared_dir):
    """Two small real cubes cut from CAVE scenes (train) and one (validation), as HDF5 cube files."""
    import h5py

    folder = tmp_path_factory.mktemp("tiny")
    out = []
    for name, box in (("beads", (100, 164, 200, 264)), ("cloth", (0, 64, 0, 64)), ("paints", (300, 332, 300, 340))):
        with h5py.File(shared_dir / "data" / "cave" / f"{name}.h5", "r") as f:
            cube = f["cube"][box[0]:box[1], box[2]:box[3]].astype(np.float32) * np.float32(f["cube"].attrs["scale"])
            wl = f["wavelengths"][()]
        path = folder / f"{name}.h5"
        with h5py.File(path, "w") as f:
            f["cube"] = cube
            f["wavelengths"] = wl
        out.append(str(path))
    return out[:2], out[2:]


def test_loss_weighs_dark_pixels_more():
    gt = torch.tensor([0.01, 0.5])
    dark = loss_fn(gt + torch.tensor([0.01, 0.0]), gt, 0.1, 0.01)
    bright = loss_fn(gt + torch.tensor([0.0, 0.01]), gt, 0.1, 0.01)
    assert dark > bright


def test_training_reduces_the_loss_and_resumes(tmp_path, tiny_data):
    train_files, val_files = tiny_data
    cfg = TrainConfig(train=train_files, val=val_files, epochs=2, samples_per_epoch=32, patch_px=24, batch_size=8,
                      lr=2e-3, warmup_steps=2)
    out = tmp_path / "run"
    first = train(cfg, out, device="cpu", max_minutes=1e-9)  # stops after one epoch
    assert first["epoch"] == 1
    assert (out / "last.pt").exists() and (out / "best.safetensors").exists()
    second = train(cfg, out, device="cpu")  # resumes at epoch 2, not 1
    assert second["epoch"] == 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert log[1]["step"] == 8  # 2 epochs x 4 steps: the resumed run did not repeat epoch 1
    assert log[1]["train_loss"] < log[0]["train_loss"]
    _, info = read_weights(out / "best.safetensors")
    assert info.kind == "gmsr-cli" and info.camera == "srgb"
    assert set(info.card["val_metrics"]) == {"mrae", "rmse", "psnr", "sam"}
    assert info.card["train_scenes"] == train_files
    assert info.card["selected"] == "best validation MRAE"
    # the end of the schedule: final.safetensors holds last.pt's weights, with the last epoch's validation
    state_dict, final = read_weights(out / "final.safetensors")
    assert final.card["selected"] == "final epoch of the schedule" and final.card["epoch"] == 2
    assert final.card["val_metrics"] == pytest.approx(log[1]["val"]["mean"])
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert all(torch.equal(state_dict[k], ckpt["model"][k]) for k in ckpt["model"])
    # a run that completed without it (older versions) gets it by running the command again
    (out / "final.safetensors").unlink()
    again = train(cfg, out, device="cpu")
    assert again == {}  # nothing more was trained
    state_dict, final = read_weights(out / "final.safetensors")
    assert final.card["epoch"] == 2 and final.card["val_metrics"] == pytest.approx(log[1]["val"]["mean"])
    assert all(torch.equal(state_dict[k], ckpt["model"][k]) for k in ckpt["model"])
    assert len((out / "log.jsonl").read_text().splitlines()) == 2


def test_fine_tuned_card_records_what_it_started_from(tmp_path, tiny_data):
    """A fine-tuned model's card keeps the lineage (name, sha256, recipe, time) of its starting
    weights, so it stays true after that file is replaced, and sums the training time."""
    train_files, val_files = tiny_data
    cfg = TrainConfig(train=train_files, val=val_files, epochs=1, samples_per_epoch=8, patch_px=16, batch_size=8)
    train(cfg, tmp_path / "first", device="cpu")
    _, first = read_weights(tmp_path / "first" / "best.safetensors")
    tuned = TrainConfig(**{**cfg.__dict__, "epochs": 2, "init": str(tmp_path / "first" / "best.safetensors")})
    train(tuned, tmp_path / "second", device="cpu", max_minutes=1e-9)  # stops after one epoch
    train(tuned, tmp_path / "second", device="cpu")  # a resume keeps the lineage
    resumed = torch.load(tmp_path / "second" / "last.pt", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["started_from"]["sha256"] == first.sha256
    (tmp_path / "first" / "best.safetensors").unlink()
    _, second = read_weights(tmp_path / "second" / "best.safetensors")
    origin = second.card["started_from"]
    assert origin["sha256"] == first.sha256 and origin["recipe"] == first.card["recipe"]
    assert origin["training_seconds"] == first.card["training_seconds"]
    assert second.card["total_training_seconds"] == second.card["training_seconds"] + first.card["training_seconds"]


def test_resume_refuses_another_camera(tmp_path, tiny_data, gmsr):
    train_files, val_files = tiny_data
    cfg = TrainConfig(train=train_files, val=val_files, epochs=1, samples_per_epoch=8, patch_px=16, batch_size=8)
    train(cfg, tmp_path / "run", device="cpu")
    result = gmsr("train", "--out", tmp_path / "run", "--camera", "cie1964", "--train", train_files[0],
                  "--val", val_files[0], "--epochs", "2", code=1)
    assert "trained for camera 'srgb'" in result.output and "Traceback" not in result.output


def test_train_and_evaluate_commands(tmp_path, tiny_data, shared_dir, gmsr):
    train_files, val_files = tiny_data
    gmsr("train", "--out", tmp_path / "run", "--epochs", "1", "--samples-per-epoch", "8", "--patch", "16",
         "--batch-size", "8", "--train", train_files[0], "--train", train_files[1], "--val", val_files[0], code=0)
    weights = str(tmp_path / "run" / "best.safetensors")
    # the training loop scores the network's own output: evaluate without exact colour to compare
    result = gmsr("evaluate", "--weights", weights, "--json", "--tile", "0", "--baseline", "--no-exact-colour",
                  val_files[0], code=0)
    report = json.loads(result.output)
    assert report["scenes"][0]["scene"] == "paints"
    assert report["mean"]["psnr"] == pytest.approx(report["scenes"][0]["model"]["psnr"])
    # The card's validation numbers were computed on the whole image: evaluate with --tile 0 agrees.
    _, info = read_weights(weights)
    assert report["mean"]["mrae"] == pytest.approx(info.card["val_metrics"]["mrae"], rel=1e-4)
    assert report["baseline_mean"]["psnr"] > 15
    # per-band RMSE: 31 bands whose mean square is the whole-image MSE, for both methods
    assert report["wavelengths_nm"] == [400.0 + 10 * i for i in range(31)]
    for bands, whole in ((report["band_rmse"], report["mean"]), (report["baseline_band_rmse"], report["baseline_mean"])):
        assert len(bands) == 31
        assert np.mean(np.square(bands)) == pytest.approx(whole["rmse"] ** 2, rel=1e-9)
    result = gmsr("evaluate", "--weights", weights, "--tile", "0", "--per-band", "--charts", val_files[0], code=0)
    assert "RMSE per band" in result.output and "700" in result.output
    assert "Spectral check charts" in result.output and "Synthetic check scenes" in result.output
    assert result.output.count("hyspex_skin") == 2  # a row in each check table
    assert "not both" in gmsr("evaluate", "--weights", weights, "--split", "train", val_files[0], code=2).output
