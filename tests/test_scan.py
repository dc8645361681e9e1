"""Every selective-scan backend against the sequential reference, values and gradients."""

import pytest
import torch

from gmsr_cli.model.layers import SS2D
from gmsr_cli.scan import available_backends, get_backend, selective_scan

# The 1-D scans on the CPU (triton's SS2D kernel has no 1-D scan: tests/test_triton_ss2d.py).
CPU_BACKENDS = [b for b in available_backends("cpu") if b != "reference" and get_backend(b).scan]


def _inputs(length, batch=2, groups=4, per_group=5, n_state=16, strong=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    channels = groups * per_group
    u = torch.randn(batch, channels, length, generator=g)
    # Raw delta before softplus: wide range, so some steps have dt ~ 0 and some dt ~ 10.
    delta = torch.randn(batch, channels, length, generator=g) * 4
    A_logs = torch.randn(channels, n_state, generator=g) * 2
    if strong:
        A_logs = A_logs + 4  # |A| up to ~e^10: decay exp(dt*A) underflows to 0 on many steps
    A = -torch.exp(A_logs)
    B = torch.randn(batch, groups, n_state, length, generator=g)
    C = torch.randn(batch, groups, n_state, length, generator=g)
    D = torch.randn(channels, generator=g)
    bias = torch.randn(channels, generator=g)
    return u, delta, A, B, C, D, bias


def _assert_close(y, ref):
    scale = ref.abs().max().clamp(min=1e-6)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5 * scale.item())


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("length", [1, 7, 1037])
@pytest.mark.parametrize("strong", [False, True])
def test_backend_matches_reference(backend, length, strong):
    u, delta, A, B, C, D, bias = _inputs(length, strong=strong)
    ref = selective_scan(u, delta, A, B, C, D, bias, True, backend="reference")
    assert torch.isfinite(ref).all()
    _assert_close(selective_scan(u, delta, A, B, C, D, bias, True, backend=backend), ref)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backend_without_softplus_bias_or_D(backend):
    u, delta, A, B, C, _, _ = _inputs(300, seed=3)
    delta = delta.abs()
    ref = selective_scan(u, delta, A, B, C, backend="reference")
    _assert_close(selective_scan(u, delta, A, B, C, backend=backend), ref)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("length", [7, 203])
def test_gradients_match_autograd_through_reference(backend, length):
    u, delta, A, B, C, D, bias = _inputs(length, seed=1)
    A_logs = torch.log(-A)
    leaves = [t.clone().requires_grad_() for t in (u, delta, A_logs, B, C, D, bias)]
    weight = torch.randn(u.shape, generator=torch.Generator().manual_seed(2))

    def grads(name):
        for t in leaves:
            t.grad = None
        u_, d_, al_, b_, c_, D_, bias_ = leaves
        y = selective_scan(u_, d_, -torch.exp(al_), b_, c_, D_, bias_, True, backend=name)
        (y * weight).sum().backward()
        return [t.grad.clone() for t in leaves]

    for got, want in zip(grads(backend), grads("reference")):
        _assert_close(got, want)


# What auto picks and the errors for backends that cannot run: tests/test_backends.py.


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["mamba", "chunked"])
def test_cuda_backends_match_reference(backend):
    if backend == "mamba" and "mamba" not in available_backends("cuda"):
        pytest.skip("mamba-ssm is not installed")
    u, delta, A, B, C, D, bias = _inputs(1037, strong=True)
    ref = selective_scan(u, delta, A, B, C, D, bias, True, backend="reference")
    args = [t.cuda() for t in (u, delta, A, B, C, D, bias)]
    _assert_close(selective_scan(*args, True, backend=backend).cpu(), ref)


# The fused SS2D inference kernel (gmsr_cli/scan/numba_ss2d_infer.py) and its in-place helpers
# (gmsr_cli/scan/numba_ss2d_parts.py): the four directions walked in place over one channels-last image,
# against the reference backend run on the flipped and transposed sequences of the spec.


def _fused_case(height, width, channels, rank, n_state=16, strong=False, batch=2, seed=0):
    """Random inputs for the four directions; returns the kernel's y and the reference's,
    both (B, H*W, channels)."""
    from gmsr_cli.scan.numba_ss2d_infer import ss2d_scan_direction

    g = torch.Generator().manual_seed(seed)
    length = height * width
    x = torch.randn(batch, channels, height, width, generator=g)
    y_ref = torch.zeros(batch, channels, length)
    y = torch.zeros(batch, length, channels)
    xs = x.permute(0, 2, 3, 1).reshape(batch, length, channels).contiguous()
    for k in range(4):
        proj = torch.randn(batch, rank + 2 * n_state, height, width, generator=g)
        dt_w = torch.randn(channels, rank, generator=g)
        dt_b = torch.randn(channels, generator=g)
        A_logs = torch.randn(channels, n_state, generator=g) * 2 + (4 if strong else 0)
        A = -torch.exp(A_logs)
        D = torch.randn(channels, generator=g)
        pr = SS2D._to_sequence(proj, k)
        delta = torch.einsum("brl,dr->bdl", pr[:, :rank], dt_w)
        y_k = selective_scan(SS2D._to_sequence(x, k), delta, A, pr[:, None, rank:rank + n_state],
                             pr[:, None, rank + n_state:], D, dt_b, True, backend="reference")
        y_ref += SS2D._from_sequence(y_k, k, height, width)
        proj_px = proj.permute(0, 2, 3, 1).reshape(batch, length, -1).contiguous()
        a2 = (A * (1 / torch.log(torch.tensor(2.0)))).contiguous()
        ss2d_scan_direction(xs.numpy(), proj_px.numpy(), dt_w.numpy(), dt_b.numpy(), a2.numpy(), D.numpy(),
                            height, width, k, y.numpy())
    return y, y_ref.transpose(1, 2)


@pytest.mark.parametrize("height, width, rank", [(1, 1, 1), (1, 7, 2), (7, 1, 1), (17, 61, 2)])
@pytest.mark.parametrize("strong", [False, True])
def test_fused_ss2d_kernel_matches_reference(height, width, rank, strong):
    pytest.importorskip("numba")
    y, ref = _fused_case(height, width, 20, rank, strong=strong)
    assert torch.isfinite(ref).all()
    _assert_close(y, ref)


def test_fused_ss2d_kernel_other_state_counts_and_ranks_and_wide_padded_channels():
    pytest.importorskip("numba")
    from gmsr_cli.scan.numba_codegen import padded_channels

    y, ref = _fused_case(5, 6, 13, 3, n_state=5, batch=3, seed=1)  # generated and compiled at first use
    _assert_close(y, ref)
    y, ref = _fused_case(6, 9, padded_channels(70), 1, seed=2)  # more channels than one job takes
    _assert_close(y, ref)


def test_generated_fused_kernel_module_is_up_to_date():
    pytest.importorskip("numba")
    from pathlib import Path

    from gmsr_cli.scan import numba_ss2d_infer

    generated = Path(numba_ss2d_infer.__file__).parent / "_numba_ss2d_infer_n16.py"
    assert generated.read_text() == numba_ss2d_infer.module_source()


def test_fused_kernel_leaves_denormals_working_on_the_calling_thread():
    pytest.importorskip("numba")
    import numpy as np

    _fused_case(3, 4, 8, 1)
    tiny = np.float32(1e-38) * np.float32(1e-3)  # a denormal: 0 if flush-to-zero had leaked
    assert tiny > 0


@pytest.mark.parametrize("shape", [(1, 1, 1, 3), (2, 5, 7, 20), (1, 9, 1, 8), (2, 33, 17, 62)])
def test_inplace_depthwise_conv_silu_and_norm_gate_match_torch(shape):
    pytest.importorskip("numba")
    import torch.nn.functional as F

    from gmsr_cli.scan.numba_ss2d_parts import depthwise_conv3x3_silu_, layer_norm_silu_gate_

    b, h, w, d = shape
    g = torch.Generator().manual_seed(3)
    x = torch.randn(b, h, w, d, generator=g)
    weight, bias = torch.randn(d, 1, 3, 3, generator=g), torch.randn(d, generator=g)
    ref = F.silu(F.conv2d(x.permute(0, 3, 1, 2), weight, bias, padding=1, groups=d)).permute(0, 2, 3, 1)
    taps = weight.reshape(d, 9).t().contiguous().numpy()
    for bands in (1, 2, 7):  # rows split among jobs, more bands than rows included
        got = x.clone()
        depthwise_conv3x3_silu_(got.numpy().reshape(b, h, w * d), taps, bias.numpy(), bands)
        _assert_close(got, ref)
    # Padded rows (8 extra channels) must keep their padding untouched.
    y = torch.cat([torch.randn(b * h * w, d, generator=g) * 3 + 1, torch.full((b * h * w, 8), 7.0)], dim=1)
    z = torch.randn(b * h * w, d + 8, generator=g) * 4
    gamma, beta = torch.randn(d, generator=g), torch.randn(d, generator=g)
    ref = F.layer_norm(y[:, :d], (d,), gamma, beta, 1e-5) * F.silu(z[:, :d])
    layer_norm_silu_gate_(y.numpy(), z.numpy(), d, gamma.numpy(), beta.numpy(), 1e-5)
    _assert_close(y[:, :d], ref)
    assert (y[:, d:] == 7.0).all()


def test_the_gmsr_process_starts_numba_without_scipy_blas(tmp_path):
    """The gmsr command starts numba's CPU target with scipy.linalg hidden (none of its kernels use
    BLAS; the probe costs about 0.1 s): a reconstruction works and gives the same cube as in a
    process that started numba normally, scipy.linalg was never loaded, and imports afterwards."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    import numpy as np
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(tmp_path / "p.png")
    driver = textwrap.dedent("""
        import sys
        from gmsr_cli.scan import numba_start
        if sys.argv[1] == "skip":
            numba_start.skip_blas_probe()
        from gmsr_cli.cli.main import cli
        cli.main(["reconstruct", sys.argv[2], "-o", sys.argv[3], "-q"], prog_name="gmsr", standalone_mode=False)
        print("scipy.linalg loaded:", "scipy.linalg" in sys.modules)
        import scipy.linalg  # noqa: F401
        print("importable")
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cubes = {}
    for mode in ("skip", "normal"):
        out = tmp_path / f"{mode}.npy"
        run = subprocess.run([sys.executable, "-c", driver, mode, str(tmp_path / "p.png"), str(out)],
                             capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split("\n")[-3:-1] == [f"scipy.linalg loaded: {mode == 'normal'}", "importable"], run.stdout
        cubes[mode] = np.load(out)
    # the same computation (matrix products may round differently with another memory alignment)
    np.testing.assert_allclose(cubes["skip"], cubes["normal"], rtol=0, atol=1e-6)
