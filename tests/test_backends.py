"""The scan backend table: what ``auto`` picks per device, errors that say what to do, binding once
per device, and the whole network through the public loader with every backend the device has."""

import importlib.machinery
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from gmsr_cli.errors import BackendError
from gmsr_cli.model.layers import SS2D
from gmsr_cli.model.loading import load_model
from gmsr_cli.scan import BACKEND_NAMES, BACKENDS, available_backends, bind_ss2d, registry, resolve_backend


@pytest.fixture
def fake_mamba(monkeypatch):
    """mamba-ssm as a third-party package would present itself here: importable, with or without
    its Mamba-1 CUDA extension (``install_extension``). No GPU is needed: choosing a backend only
    looks at the device type."""

    def install(with_extension: bool) -> None:
        for name in ("mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.selective_scan_interface"):
            module = types.ModuleType(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            monkeypatch.setitem(sys.modules, name, module)
        sys.modules["mamba_ssm.ops.selective_scan_interface"].selective_scan_fn = lambda *a, **k: None
        if with_extension:
            extension = types.ModuleType("selective_scan_cuda")
            extension.__spec__ = importlib.machinery.ModuleSpec("selective_scan_cuda", None)
            monkeypatch.setitem(sys.modules, "selective_scan_cuda", extension)
        else:
            monkeypatch.setitem(sys.modules, "selective_scan_cuda", None)  # import raises ImportError
        monkeypatch.setitem(registry._import_failures, "mamba_ssm", None)

    return install


def _without_triton(monkeypatch):
    monkeypatch.setitem(registry._import_failures, "triton", "triton is not installed")


def test_the_table_makes_the_choices_and_the_help():
    from gmsr_cli.cli.options import backend_option

    names = [row.name for row in BACKENDS]
    assert BACKEND_NAMES == ("auto", *names)
    assert len(set(names)) == len(names)
    for row in BACKENDS:
        assert row.scan or row.ss2d_inference, row.name  # every backend computes something
        assert set(row.auto_devices) <= set(row.devices)

    @backend_option
    def command(backend):
        pass

    option = command.__click_params__[0]
    assert tuple(option.type.choices) == BACKEND_NAMES
    for name in names:
        assert f"{name}:" in option.help


def test_auto_on_the_cpu_is_numba_and_never_the_interpreted_triton():
    pytest.importorskip("numba")
    assert resolve_backend("auto", "cpu") == "numba"
    assert resolve_backend("auto", None) == "numba"
    assert resolve_backend("auto", torch.device("cpu")) == "numba"


def test_auto_on_cuda_prefers_triton_then_mamba_then_chunked(monkeypatch, fake_mamba):
    if "triton" in available_backends("cuda"):
        assert resolve_backend("auto", "cuda") == "triton"
    _without_triton(monkeypatch)
    assert resolve_backend("auto", "cuda:1") == "chunked"  # no mamba-ssm either
    fake_mamba(with_extension=True)
    assert resolve_backend("auto", "cuda") == "mamba"


def test_mamba_without_its_cuda_extension_falls_through_cleanly(monkeypatch, fake_mamba):
    """Upstream made the Mamba-1 extension opt-in: the package imports, its kernel does not."""
    _without_triton(monkeypatch)
    fake_mamba(with_extension=False)
    assert resolve_backend("auto", "cuda") == "chunked"
    assert "mamba" not in available_backends("cuda")
    with pytest.raises(BackendError, match="selective_scan_cuda"):
        resolve_backend("mamba", "cuda")


def test_errors_name_the_device_or_the_install():
    with pytest.raises(BackendError, match="runs only on a CUDA GPU"):
        resolve_backend("mamba", "cpu")
    with pytest.raises(BackendError, match="runs only on the CPU"):
        resolve_backend("numba", "cuda")
    with pytest.raises(BackendError, match="choose one of auto, triton"):
        resolve_backend("fastest", "cpu")


def test_triton_on_the_cpu_needs_the_interpreter(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.delitem(sys.modules, "gmsr_cli.scan.triton_ss2d", raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendError, match="TRITON_INTERPRET=1"):
        resolve_backend("triton", "cpu")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("triton", "cpu") == "triton"


def test_a_backend_without_a_1d_scan_takes_autos_for_the_per_direction_path():
    """triton computes whole SS2D layers (with and without gradients) but has no 1-D scan: what
    its layers cannot run fused (float64 inputs) takes the 1-D scan auto would pick there."""
    pytest.importorskip("triton")
    ops = bind_ss2d("triton", "cpu", SS2D(10))  # the interpreter is on in tests (conftest)
    assert ops.backend == "triton"
    assert ops.inference.__name__ == ops.training.__name__ == "ss2d_forward_triton"
    assert ops.scan.__name__ == "selective_scan_numba"


def test_ss2d_binds_its_operations_once_for_the_device(monkeypatch, fake_mamba):
    pytest.importorskip("numba")
    layer = SS2D(10, backend="auto", device="cpu")
    assert layer.backend == "numba"
    assert layer._ops.inference.__name__ == "ss2d_forward_numba"
    assert layer._ops.training.__name__ == "ss2d_forward_train_numba"
    # The model is built for the device it runs on: mamba is bound for CUDA (no CUDA tensor needed
    # to bind), which a model built for the CPU and moved could never do.
    _without_triton(monkeypatch)
    fake_mamba(with_extension=True)
    ops = bind_ss2d("mamba", "cuda", layer)
    assert ops.backend == "mamba" and ops.scan.__name__ == "selective_scan_mamba"
    assert ops.inference is None and ops.training is None
    with pytest.raises(BackendError):
        bind_ss2d("mamba", "cpu", layer)


def test_importing_the_table_imports_no_backend():
    code = ("import sys; import gmsr_cli.scan.registry; "
            "print(sorted(m for m in ('torch', 'numba', 'triton', 'mamba_ssm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Whole network, public loader, shipped weights: every backend this machine's devices have against
# the reference backend (triton on the CPU through the interpreter: a small image).
def _backends_for(device):
    return [b for b in available_backends(device) if b != "reference"]


def _run(backend, device, rgb):
    model = load_model("gmsr-cave-srgb", device=device, backend=backend)
    assert model.backend == backend
    with torch.no_grad():
        return model.module(rgb.to(model.device)).cpu()


@pytest.mark.parametrize("backend", _backends_for("cpu"))
def test_whole_network_through_the_loader_matches_reference_on_the_cpu(backend):
    # One 16 x 24 image: the triton row runs in Triton's interpreter, ~1 min (every program's step
    # loop is numpy), so no batch here; per-sample independence is tested in test_model.py.
    rgb = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(5))
    got, want = _run(backend, "cpu", rgb), _run("reference", "cpu", rgb)
    scale = want.abs().max().item()
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", _backends_for("cuda") if torch.cuda.is_available() else [])
def test_whole_network_through_the_loader_matches_reference_on_cuda(backend):
    # TF32 off: cuDNN's default TF32 convolutions round to 10-bit mantissas, which would hide the
    # kernels' own error (benchmarks/gpu_check.py measures both).
    rgb = torch.rand(2, 3, 64, 80, generator=torch.Generator().manual_seed(6))
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        got = _run(backend, "cuda", rgb)
    want = _run("reference", "cpu", rgb)
    scale = want.abs().max().item()
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4 * scale)


def test_info_system_says_what_runs_and_why_not():
    from click.testing import CliRunner

    from gmsr_cli.cli.main import cli

    result = CliRunner().invoke(cli, ["info", "--system", "--json"])
    assert result.exit_code == 0, result.output
    import json

    d = json.loads(result.output)
    assert d["torch"] == torch.__version__ and d["cuda_available"] == torch.cuda.is_available()
    cpu = d["scan_backends"]["cpu"]
    assert cpu["auto"] == resolve_backend("auto", "cpu")
    assert {n for n, row in cpu["backends"].items() if row["usable"]} == set(available_backends("cpu"))
    assert cpu["backends"]["mamba"]["why_not"] == "runs only on cuda"
    text = CliRunner().invoke(cli, ["info", "--system"]).output
    assert f"scan backends on cpu: auto picks {cpu['auto']}" in text
