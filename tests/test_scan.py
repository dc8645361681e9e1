"""Every selective-scan backend against the sequential reference, values and gradients."""

import pytest
import torch

from gmsr_cli.errors import BackendError
from gmsr_cli.scan import available_backends, resolve_backend, selective_scan

CPU_BACKENDS = [b for b in available_backends("cpu") if b != "reference"]


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


def test_auto_picks_a_compiled_cpu_backend_when_numba_is_installed():
    pytest.importorskip("numba")
    assert resolve_backend("auto", "cpu") == "numba"


def test_unavailable_backends_are_errors_that_say_what_to_do():
    with pytest.raises(BackendError, match="CUDA"):
        resolve_backend("mamba", "cpu")
    with pytest.raises(BackendError, match="choose one of"):
        resolve_backend("fastest", "cpu")
    with pytest.raises(BackendError, match="CPU"):
        resolve_backend("numba", "cuda")


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
