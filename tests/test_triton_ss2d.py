"""The chunked Triton SS2D scan (gmsr_cli/scan/triton_ss2d.py), values and gradients, against the
per-direction composition of the reference scan; without CUDA it runs in Triton's interpreter."""

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from gmsr_cli.errors import BackendError  # noqa: E402
from gmsr_cli.model.layers import scan_four_directions  # noqa: E402
from gmsr_cli.scan import triton_ss2d  # noqa: E402
from gmsr_cli.scan.reference import selective_scan_reference  # noqa: E402
from gmsr_cli.scan.triton_ss2d import ss2d_scan_triton  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _parameters(d, n_state, rank, seed, dt_shift=0.0):
    """SS2D's scan parameters for d channels (x_proj_weight, dt_projs_weight, dt_projs_bias,
    A_logs, Ds), drawn around the published initialisation but wider: strong and weak decay,
    dt from ~1e-4 to ~1, every direction different."""
    g = torch.Generator().manual_seed(seed)
    x_proj = (torch.rand(4, rank + 2 * n_state, d, generator=g) * 2 - 1) * (3 / math.sqrt(d))
    dt_w = (torch.rand(4, d, rank, generator=g) * 2 - 1) * rank ** -0.5
    dt = torch.exp(torch.rand(4, d, generator=g) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
    dt_b = dt + torch.log(-torch.expm1(-dt)) + torch.randn(4, d, generator=g) * 2 + dt_shift
    A_logs = torch.log(torch.arange(1, n_state + 1.0)).repeat(4 * d, 1) + torch.randn(4 * d, n_state, generator=g)
    Ds = torch.randn(4 * d, generator=g)
    return [x_proj, dt_w, dt_b, A_logs, Ds]


def _composed_reference(x, x_proj, dt_w, dt_b, A_logs, Ds):
    """SS2D.forward's four scans one by one through the reference scan, summed in pixel order:
    x (B, H, W, d) -> (B, H, W, d)."""
    b, h, w, d = x.shape
    y = scan_four_directions(x.permute(0, 3, 1, 2), x_proj, dt_w, dt_b, A_logs, Ds, selective_scan_reference)
    return y.transpose(1, 2).reshape(b, h, w, d)


def _triton(x, params, **knobs):
    return ss2d_scan_triton(x.to(DEVICE), *(p.to(DEVICE) for p in params), **knobs).cpu()


def _assert_matches(got, want):
    assert got.shape == want.shape and got.dtype == torch.float32
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_runs_here():
    """The tests below exercise the kernels, not a skip: compiled on CUDA, interpreted on the CPU."""
    assert DEVICE == "cuda" or triton_ss2d.interpreter_enabled()


@pytest.mark.parametrize("batch, size, d, n_state, rank, chunk, block", [
    (2, (5, 7), 20, 16, 2, None, None),  # the heuristics: 32 channels per program, 3 chunks of 16
    (1, (3, 5), 6, 4, 1, 1, 4),  # chunks of one step; 6 channels in blocks of 4
    (1, (5, 7), 10, 8, 2, 6, 8),  # 35 steps in chunks of 6: the last chunk is short
    (2, (7, 9), 12, 16, 1, 128, 16),  # one chunk longer than the sequence: no carry pass
    (1, (9, 11), 3, 5, 1, None, None),  # N = 5 and 3 channels: padded state and channel tiles
])
def test_matches_reference(batch, size, d, n_state, rank, chunk, block):
    params = _parameters(d, n_state, rank, seed=d + n_state)
    x = torch.randn(batch, *size, d, generator=torch.Generator().manual_seed(d))
    _assert_matches(_triton(x, params, chunk=chunk, block_channels=block), _composed_reference(x, *params))


@pytest.mark.parametrize("direction", range(4))
def test_each_direction_alone(direction):
    """With the other directions' x_proj and D zeroed (so their y is 0), the output is direction
    ``direction``'s scan alone: its pixel order and its parameters."""
    d, n_state, rank = 5, 4, 1
    params = _parameters(d, n_state, rank, seed=7)
    for k in range(4):
        if k != direction:
            params[0][k] = 0
            params[4][k * d:(k + 1) * d] = 0
    x = torch.randn(1, 3, 5, d, generator=torch.Generator().manual_seed(direction))
    got = _triton(x, params, chunk=4)
    want = _composed_reference(x, *params)
    assert want.abs().max() > 0.1
    _assert_matches(got, want)


def test_transposed_image_swaps_row_and_column_directions():
    """Scanning the transposed image with directions (1, 0, 3, 2)'s parameters gives the
    transposed output: rows and columns are the same walk seen from the other side."""
    d, n_state, rank = 6, 4, 2
    params = _parameters(d, n_state, rank, seed=11)
    x = torch.randn(1, 3, 5, d, generator=torch.Generator().manual_seed(3))
    order = [1, 0, 3, 2]
    swapped = [params[0][order], params[1][order], params[2][order],
               params[3].view(4, d, n_state)[order].reshape(4 * d, n_state), params[4].view(4, d)[order].reshape(-1)]
    y = _triton(x, params, chunk=4)
    y_t = _triton(x.transpose(1, 2), swapped, chunk=4)
    torch.testing.assert_close(y_t.transpose(1, 2), y, rtol=1e-5, atol=1e-5 * y.abs().max().item())


def test_strong_decay_stays_finite():
    """dt up to ~30 (past softplus' linear threshold of 20) and dt * |A| in the thousands: the
    decays underflow to 0, the carried states stay finite, and the result is the reference's."""
    d, n_state, rank = 4, 4, 1
    params = _parameters(d, n_state, rank, seed=5, dt_shift=12.0)
    params[2][:, 0] = 30.0
    params[3] += 3.0  # |A| ~ 20 .. 80
    x = torch.randn(1, 5, 7, d, generator=torch.Generator().manual_seed(5))
    want = _composed_reference(x, *params)
    assert torch.isfinite(want).all()
    _assert_matches(_triton(x, params, chunk=8), want)


def test_small_steps_keep_their_precision():
    """dt = softplus(bias) ~ 6e-6 .. 1e-3 (bias -12 .. -7, no dt input) and no D term, so y is
    proportional to dt: the softplus must keep a small dt's relative precision (log(1 + e) in
    float32 is up to 1e-2 off here)."""
    d, n_state, rank = 4, 4, 1
    params = _parameters(d, n_state, rank, seed=9)
    params[0][:, :rank] = 0
    params[2] = torch.linspace(-12, -7, 4 * d).view(4, d)
    params[4] = torch.zeros(4 * d)
    x = torch.randn(1, 5, 7, d, generator=torch.Generator().manual_seed(9))
    _assert_matches(_triton(x, params, chunk=8), _composed_reference(x, *params))


@pytest.mark.parametrize("batch, size, d, n_state, rank, chunk, block", [
    (2, (3, 3), 6, 4, 2, 4, 4),  # chunks of 4, 4, 1: carried both ways; 2 channel blocks
    (1, (3, 5), 5, 4, 1, 32, None),  # one chunk: no carry
])
def test_gradients_match_autograd_through_the_reference(batch, size, d, n_state, rank, chunk, block):
    """The backward pass: the gradient of sum(w * y) for x and every parameter, against autograd
    through the per-direction reference composition."""
    params = _parameters(d, n_state, rank, seed=3)
    x = torch.randn(batch, *size, d, generator=torch.Generator().manual_seed(4))
    weight = torch.randn(batch, *size, d, generator=torch.Generator().manual_seed(5))
    results = []
    for device in ("cpu", DEVICE):  # fresh leaves each time, so that no gradient is shared
        leaves = [t.detach().clone().to(device).requires_grad_() for t in [x] + params]
        if len(results) == 0:
            y = _composed_reference(*leaves)
        else:
            y = ss2d_scan_triton(*leaves, chunk=chunk, block_channels=block)
        (y * weight.to(device)).sum().backward()
        results.append([y.detach().cpu()] + [leaf.grad.cpu() for leaf in leaves])
    names = ["y", "x", "x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds"]
    for name, got, want in zip(names, results[1], results[0]):
        assert got.shape == want.shape, name
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item(), msg=name)


def test_without_gradients_nothing_is_saved():
    """Inference (no_grad, or inputs without requires_grad) returns a plain tensor."""
    params = [p.requires_grad_() for p in _parameters(3, 4, 1, seed=2)]
    x = torch.randn(1, 2, 3, 3)
    with torch.no_grad():
        y = _triton(x, params)
    assert y.grad_fn is None and not y.requires_grad


def test_wrong_parameter_shapes_are_rejected():
    params = _parameters(6, 4, 1, seed=1)
    x = torch.randn(1, 3, 3, 5)  # 5 channels, the parameters are for 6
    with pytest.raises(ValueError, match=r"A_logs must be \(4 \* d, N\)"):
        ss2d_scan_triton(x.to(DEVICE), *(p.to(DEVICE) for p in params))


def test_without_triton_the_module_imports_and_the_call_says_what_to_install(monkeypatch):
    """The backend registry imports the module lazily; without triton it must import and the
    call must name the fix."""
    for name in [m for m in sys.modules if m == "triton" or m.startswith("triton.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "triton", None)  # import triton raises ImportError
    spec = importlib.util.spec_from_file_location("gmsr_cli.scan._ss2d_triton_without_triton", triton_ss2d.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not module.triton_available() and not module.interpreter_enabled()
    with pytest.raises(BackendError, match="pip install triton"):
        module.ss2d_scan_triton(torch.zeros(1, 2, 2, 2), *_parameters(2, 4, 1, seed=0))


_SUBPROCESS = textwrap.dedent("""
    import json, os, sys
    import torch
    import triton
    from gmsr_cli.errors import BackendError
    from gmsr_cli.scan import triton_ss2d
    out = {"interpreter": triton_ss2d.interpreter_enabled(), "triton": triton.__version__}
    d, n = 4, 4
    args = [torch.zeros(1, 2, 3, d), torch.zeros(4, 1 + 2 * n, d), torch.zeros(4, d, 1), torch.zeros(4, d),
            torch.zeros(4 * d, n), torch.zeros(4 * d)]
    try:
        triton_ss2d.ss2d_scan_triton(*args)
    except BackendError as error:
        out["error"] = str(error)
    # Compile the kernels for an sm_90 GPU: triton ships ptxas, so no GPU is needed to check
    # that they lower to machine code (which the interpreter does not check).
    from triton.backends import backends
    if "nvidia" in backends and tuple(int(p) for p in triton.__version__.split(".")[:2]) >= (3, 9):
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        sizes = dict(RANK=2, N=16, BLOCK_D=32, BLOCK_N=16, DIRECTION=3)
        kernels = [(triton_ss2d._chunk_end_states, sizes),
                   (triton_ss2d._carry_states, dict(N=16, BLOCK_D=32, BLOCK_N=16, REVERSE=True)),
                   (triton_ss2d._chunk_outputs, dict(sizes, HAS_START=True, ACCUMULATE=True, ALL_STATES=False)),
                   (triton_ss2d._chunk_start_adjoints, sizes),
                   (triton_ss2d._chunk_gradients, dict(sizes, BLOCK_R=2, HAS_CARRY=True, ACCUMULATE=True))]
        out["cubin"] = {}
        for fn, constants in kernels:
            signature = {name: "constexpr" if name in constants else "*fp32" if name.endswith("_ptr") else "i32"
                         for name in fn.arg_names}
            compiled = triton.compile(ASTSource(fn, signature, constants), target=GPUTarget("cuda", 90, 32),
                                      options={"num_warps": triton_ss2d.num_warps(32, 16)})
            out["cubin"][fn.__name__] = len(compiled.asm["cubin"])
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def without_interpreter():
    """One fresh interpreter with TRITON_INTERPRET unset: what the module reports, the error it
    raises for CPU tensors, and the sizes of its kernels compiled for sm_90."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU tensor on a machine with or without a GPU
    done = subprocess.run([sys.executable, "-c", _SUBPROCESS], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cpu_tensors_without_the_interpreter_are_a_clear_error(without_interpreter):
    assert without_interpreter["interpreter"] is False
    assert without_interpreter["error"] == ("the 'triton' backend runs on CUDA GPUs; on the CPU only with "
                                            "TRITON_INTERPRET=1 (slow, for tests); use --backend auto")


def test_kernels_compile_for_a_cuda_gpu(without_interpreter):
    if "cubin" not in without_interpreter:
        pytest.skip(f"triton {without_interpreter['triton']}: the check needs its NVIDIA backend and the "
                    "ASTSource interface of triton >= 3.9 (the version it was written with)")
    assert set(without_interpreter["cubin"]) == {"_chunk_end_states", "_carry_states", "_chunk_outputs",
                                                 "_chunk_start_adjoints", "_chunk_gradients"}
    assert all(size > 1000 for size in without_interpreter["cubin"].values())


def test_heuristics():
    """Block sizes follow the documented rules (the GPU's SM count only lowers the chunk)."""
    assert [triton_ss2d.channel_block(d) for d in (3, 16, 20, 40, 62, 64)] == [4, 16, 32, 16, 32, 32]
    cpu = torch.device("cpu")
    assert triton_ss2d.chunk_length(35, 1, cpu) == 16  # the floor
    assert triton_ss2d.chunk_length(256 * 256, 2, cpu) == 256  # sqrt(L)
    assert triton_ss2d.chunk_length(4096 * 4096, 2, cpu) == 1024  # the ceiling
