"""What the API checks before any slow work, and which errors stop a batch."""

import pytest
import torch

from gmsr_cli import api
from gmsr_cli.errors import DeviceError, GmsrError, OutputExistsError


def test_outputs_are_checked_before_the_weights_load_or_the_photo_is_read(tmp_path):
    missing_photo, bad_weights = tmp_path / "no-photo.png", tmp_path / "no-weights.safetensors"
    with pytest.raises(GmsrError, match=r"the folder .*no-such-folder does not exist"):
        api.reconstruct_file(missing_photo, tmp_path / "no-such-folder" / "c.h5", weights=bad_weights)
    (tmp_path / "c.h5").write_bytes(b"mine")
    with pytest.raises(OutputExistsError, match="c.h5 already exists"):
        api.reconstruct_file(missing_photo, tmp_path / "c.h5", weights=bad_weights)
    assert (tmp_path / "c.h5").read_bytes() == b"mine"
    with pytest.raises(GmsrError, match="the folder"):
        api.preview_file(tmp_path / "c.h5", tmp_path / "nowhere" / "p.png")


def test_a_device_error_stops_the_batch_instead_of_failing_every_photo(tmp_path, photos):
    """Out of memory on the device would fail every following photo the same way: run_batch lets
    DeviceError through after the first. (The device's failure is simulated by a forward hook on
    the network that raises torch's out-of-memory error; everything of ours runs as it would.)"""
    for name in ("a", "b", "c"):
        photos.write(tmp_path / "in" / f"{name}.png", 12, 10)
    model = api.load_model(None, device="cpu")
    calls = []

    def out_of_memory(module, args):
        calls.append(1)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.module.register_forward_pre_hook(out_of_memory)
    items = api.batch_plan([tmp_path / "in"], tmp_path / "out")
    started = []
    with pytest.raises(DeviceError, match="out of memory on cpu during reconstruction; lower --tile"):
        api.run_batch(items, model=model, on_file_start=lambda i, item: started.append(item))
    assert len(started) == 1 and len(calls) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.h5"))


def test_a_bad_photo_is_recorded_and_the_batch_goes_on(tmp_path, photos, weights_file):
    photos.write(tmp_path / "in" / "a.png", 12, 10)
    (tmp_path / "in" / "b.png").write_bytes(b"not a png")
    photos.write(tmp_path / "in" / "c.png", 12, 10)
    results = api.run_batch(api.batch_plan([tmp_path / "in"], tmp_path / "out"), model=api.load_model(weights_file, "cpu"))
    assert [r.status for r in results] == ["done", "failed", "done"]
    assert "b.png" in results[1].message
