"""Loading weights of every accepted kind, safely, and refusing bad files with one clear line."""

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gmsr_cli.errors import WeightsError
from gmsr_cli.model.gmsr import GMSRNet
from gmsr_cli.model.loading import load_model
from gmsr_cli.model.weights import load_weights, read_weights, save_weights


@pytest.fixture(scope="module")
def golden_state(shared_dir):
    golden = np.load(shared_dir / "spec" / "golden" / "gmsr_official_forward.npz")
    return {k[len("param/"):]: torch.from_numpy(golden[k]) for k in golden.files if k.startswith("param/")}, golden


def _output(model, golden):
    with torch.no_grad():
        return model(torch.from_numpy(golden["input_a"])).numpy()


def test_published_checkpoint_with_module_prefix_loads(tmp_path, golden_state):
    state, golden = golden_state
    path = tmp_path / "net_10epoch.pth"
    torch.save({"epoch": 10, "iter": 1234, "state_dict": {f"module.{k}": v for k, v in state.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 4e-4}]}}, path)
    model = GMSRNet().eval()
    info = load_weights(model, path)
    assert info.kind == "published-checkpoint"
    np.testing.assert_allclose(_output(model, golden), golden["output_a"], atol=1e-4)


def test_plain_state_dict_pickle_and_safetensors_load(tmp_path, golden_state):
    state, golden = golden_state
    torch.save(state, tmp_path / "plain.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "plain.safetensors"))
    for name in ("plain.pt", "plain.safetensors"):
        model = GMSRNet().eval()
        assert load_weights(model, tmp_path / name).kind == "state-dict"
        np.testing.assert_allclose(_output(model, golden), golden["output_a"], atol=1e-4)


def test_own_format_round_trips_with_its_card(tmp_path, golden_state):
    state, golden = golden_state
    model = GMSRNet()
    model.load_state_dict(state)
    path = save_weights(model, tmp_path / "mine.safetensors", {"name": "mine", "camera": "cie1964",
                                                                "val_metrics": {"psnr": 30.5}})
    loaded = load_model(path, device="cpu")
    info = loaded.weights
    assert info.kind == "gmsr-cli" and info.camera == "cie1964" and info.card["val_metrics"]["psnr"] == 30.5
    assert len(info.sha256) == 64
    np.testing.assert_allclose(_output(loaded.module, golden), golden["output_a"], atol=1e-4)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_never_executed(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"x": _Evil()}}, f)
    with pytest.raises(WeightsError, match=r"evil.pth: .*Python objects other than tensors \(builtins.print\)"):
        read_weights(path)
    assert "pwned" not in capsys.readouterr().out
    # A broken stream is told apart from a refused object by what the pickle names, not by wording.
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02garbage" * 10)
    with pytest.raises(WeightsError, match="junk.pth: cannot be read as weights"):
        read_weights(tmp_path / "junk.pth")


@pytest.mark.parametrize("kind", ["safetensors", "pt"])
def test_truncated_files_are_named_in_the_error(tmp_path, golden_state, kind):
    state, _ = golden_state
    path = tmp_path / f"cut.{kind}"
    if kind == "pt":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cut"):
        load_weights(GMSRNet(), path)


def test_mismatched_keys_and_shapes_name_the_first_offender(tmp_path, golden_state):
    state, _ = golden_state
    wrong_shape = dict(state)
    wrong_shape["conv3.0.bias"] = torch.zeros(30)
    torch.save(wrong_shape, tmp_path / "shape.pt")
    with pytest.raises(WeightsError, match=r"conv3\.0\.bias.*\(30,\).*\(31,\)"):
        load_weights(GMSRNet(), tmp_path / "shape.pt")
    missing = {k: v for k, v in state.items() if k != "VSS2.ln_1.weight"}
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="missing key 'VSS2.ln_1.weight'"):
        load_weights(GMSRNet(), tmp_path / "missing.pt")
    extra = dict(state, **{"head.weight": torch.zeros(3)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(WeightsError, match="unexpected key 'head.weight'"):
        load_weights(GMSRNet(), tmp_path / "extra.pt")


def test_not_weights_at_all(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(WeightsError, match="photo.png"):
        read_weights(tmp_path / "photo.png")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        read_weights(tmp_path / "empty.safetensors")


def test_unknown_names_list_the_shipped_ones(tmp_path):
    with pytest.raises(WeightsError, match="unknown weights name 'no-such-weights'"):
        read_weights("no-such-weights")
    with pytest.raises(WeightsError, match="not found"):
        read_weights(tmp_path / "absent.safetensors")


def test_expected_shapes_are_the_networks_state_dict():
    """The shapes the torch-free loader checks files against are GMSRNet's, key for key, in order
    (so both loaders name the same first offender)."""
    from gmsr_cli.model.weights import expected_shapes

    state = GMSRNet().state_dict()
    assert list(expected_shapes()) == list(state)
    assert expected_shapes() == {k: tuple(v.shape) for k, v in state.items()}


def test_numpy_loader_takes_safetensors_and_leaves_the_rest_to_torch(tmp_path, golden_state):
    """read_weights_numpy reads float32/float16 safetensors (checked like the torch loader, same
    messages) and returns None for pickles and bfloat16; load_model then falls back to the torch
    module, with the same numbers."""
    from gmsr_cli.model.weights import read_weights_numpy

    state, golden = golden_state
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "f32.safetensors"))
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(tmp_path / "f16.safetensors"))
    save_file({k: v.bfloat16().contiguous() for k, v in state.items()}, str(tmp_path / "bf16.safetensors"))
    torch.save(state, tmp_path / "plain.pt")
    arrays, info = read_weights_numpy(tmp_path / "f32.safetensors")
    assert info.kind == "state-dict" and all(isinstance(a, np.ndarray) for a in arrays.values())
    assert read_weights_numpy(tmp_path / "f16.safetensors")[0]["conv3.0.bias"].dtype == np.float16
    assert read_weights_numpy(tmp_path / "bf16.safetensors") is None
    assert read_weights_numpy(tmp_path / "plain.pt") is None
    outputs = {}
    for name in ("f32.safetensors", "bf16.safetensors", "plain.pt"):
        loaded = load_model(tmp_path / name, device="cpu")
        assert (loaded.engine is not None) == (name == "f32.safetensors")
        outputs[name] = loaded.engine(golden["input_a"].transpose(0, 2, 3, 1).copy()) if loaded.engine \
            else _output(loaded.module, golden).transpose(0, 2, 3, 1)
        np.testing.assert_allclose(outputs[name], golden["output_a"].transpose(0, 2, 3, 1), atol=5e-2 if
                                   name.startswith("bf16") else 1e-4)
    wrong = {k: v.contiguous() for k, v in state.items()}
    wrong["conv3.0.bias"] = torch.zeros(30)
    save_file(wrong, str(tmp_path / "shape.safetensors"))
    with pytest.raises(WeightsError, match=r"conv3\.0\.bias.*\(30,\).*\(31,\)"):
        read_weights_numpy(tmp_path / "shape.safetensors")
    with pytest.raises(WeightsError, match=r"conv3\.0\.bias.*\(30,\).*\(31,\)"):
        load_model(tmp_path / "shape.safetensors", device="cpu")
