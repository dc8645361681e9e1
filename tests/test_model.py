"""GMSR-Net against the published implementation's golden outputs, and its fixed defects."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gmsr_cli.model.gmsr import N_PARAMETERS, GMSRNet
from gmsr_cli.scan import available_backends


@pytest.fixture(scope="module")
def golden(shared_dir):
    return np.load(shared_dir / "spec" / "golden" / "gmsr_official_forward.npz")


def _golden_model(golden, backend):
    model = GMSRNet(backend=backend).eval()
    state = {k[len("param/"):]: torch.from_numpy(golden[k]) for k in golden.files if k.startswith("param/")}
    model.load_state_dict(state, strict=True)
    return model


def test_parameter_count_matches_the_paper():
    assert sum(p.numel() for p in GMSRNet().parameters()) == N_PARAMETERS == 44_980


# triton runs on the CPU only in its (slow) interpreter: tests/test_backends.py checks it on a small image.
@pytest.mark.parametrize("backend", [b for b in available_backends("cpu") if b != "triton"])
def test_reproduces_published_outputs(golden, backend):
    model = _golden_model(golden, backend)
    with torch.no_grad():
        for name in ("a", "b"):
            out = model(torch.from_numpy(golden[f"input_{name}"])).numpy()
            np.testing.assert_allclose(out, golden[f"output_{name}"], rtol=0, atol=1e-4)


def test_constant_image_gives_finite_output(golden):
    model = _golden_model(golden, "auto")
    with torch.no_grad():
        for value in (0.0, 0.5, 1.0):
            out = model(torch.full((1, 3, 24, 17), value))
            assert torch.isfinite(out).all(), value


def test_sample_output_does_not_depend_on_the_rest_of_the_batch(golden):
    model = _golden_model(golden, "auto")
    a = torch.from_numpy(golden["input_a"])
    other = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        alone = model(a)
        batched = model(torch.cat([a, other]))[:1]
    torch.testing.assert_close(batched, alone, rtol=0, atol=1e-5)


def test_smallest_images(golden):
    model = _golden_model(golden, "auto")
    with torch.no_grad():
        for h, w in ((2, 2), (2, 9), (9, 2), (3, 3)):
            out = model(torch.rand(1, 3, h, w))
            assert out.shape == (1, 31, h, w) and torch.isfinite(out).all()


# With AVX-512: 32, 48, 64 padded lanes, in jobs of 16, 24, 32 lanes on 2 threads.
@pytest.mark.parametrize("d_model", [10, 20, 31])
def test_ss2d_inference_path_matches_the_autograd_path(d_model):
    """SS2D without gradients on the CPU takes the fused numba path; with gradients, the
    per-direction autograd path. Random parameters (all of them perturbed), a random image."""
    pytest.importorskip("numba")
    from gmsr_cli.model.layers import SS2D

    torch.manual_seed(d_model)
    module = SS2D(d_model, backend="numba")
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 9, 13, d_model)
    from gmsr_cli.scan.numba_ss2d_infer import ss2d_forward_numba

    with torch.no_grad():
        fused = ss2d_forward_numba(module, x)
        dispatched = module(x)
    with torch.inference_mode():
        in_inference_mode = module(x)
    with_grad = module(x)
    assert with_grad.requires_grad
    scale = with_grad.abs().max().item()
    torch.testing.assert_close(fused, with_grad.detach(), rtol=1e-5, atol=1e-5 * scale)
    assert torch.equal(dispatched, fused) and torch.equal(in_inference_mode, fused)


def test_ss2d_inference_path_follows_changed_weights():
    """The fused path keeps its padded copy of the weights between calls; a weight changed in
    place (an optimiser step) or loaded from another layer must be used by the next call."""
    pytest.importorskip("numba")
    from gmsr_cli.model.layers import SS2D

    torch.manual_seed(3)
    module, other = SS2D(10, backend="numba"), SS2D(10, backend="numba")
    x = torch.randn(1, 7, 9, 10)
    with torch.no_grad():
        before = module(x)
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
        stepped, stepped_reference = module(x), module.forward_per_direction(x)
        module.load_state_dict(other.state_dict())
        loaded = module(x)
        assert not torch.allclose(stepped, before, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(stepped, stepped_reference, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(loaded, other.forward_per_direction(x), rtol=1e-5, atol=1e-5)
        assert torch.equal(loaded, other(x))


def _published_minmax(t):
    lo = t.amin(dim=tuple(range(1, t.dim())), keepdim=True)
    hi = t.amax(dim=tuple(range(1, t.dim())), keepdim=True)
    return (t - lo) / (hi - lo + 1e-8)


def _published_spatial(module, x):
    """The spec's spatial gradient attention as written: normalise the whole gradient stack, then pool."""
    from gmsr_cli.model.layers import _pad_last

    gx = _pad_last(x[..., :, 1:] - x[..., :, :-1], -1)
    gy = _pad_last(x[..., 1:, :] - x[..., :-1, :], -2)
    g = _published_minmax(torch.cat([gx, gy], dim=1))
    pooled = torch.cat([g.mean(dim=1, keepdim=True), g.amax(dim=1, keepdim=True)], dim=1)
    return x * torch.sigmoid(module.conv1(pooled))


def _published_spectral(module, x):
    d = _published_minmax(x[:, 1:] - x[:, :-1])
    d = torch.cat([d, d[:, -1:]], dim=1)
    return x * torch.sigmoid(module.fc(d.mean(dim=(2, 3), keepdim=True)) + module.fc(d.amax(dim=(2, 3), keepdim=True)))


@pytest.mark.parametrize("shape", [(2, 31, 40, 37), (1, 31, 2, 5), (3, 31, 7, 2)])
@pytest.mark.parametrize("kind", ["spatial", "spectral"])
def test_gradient_attentions_equal_the_published_formulation(kind, shape):
    """The attentions normalise pooled maps instead of whole tensors (to save memory); values and
    every gradient must equal the published order of operations."""
    from gmsr_cli.model.layers import SpatialGradientAttention, SpectralGradientAttention

    torch.manual_seed(0)
    module = (SpatialGradientAttention() if kind == "spatial" else SpectralGradientAttention(31)).double()
    published = _published_spatial if kind == "spatial" else _published_spectral
    x = torch.randn(*shape, dtype=torch.float64)
    x[0, :, 0, 0] += 5  # an outlier sets the sample's min-max range
    weights = torch.rand(shape, dtype=torch.float64)
    results = []
    for forward in (module, lambda t: published(module, t)):
        module.zero_grad()
        xi = x.clone().requires_grad_(True)
        (forward(xi) * weights).sum().backward()
        results.append((forward(xi).detach(), xi.grad, [p.grad.clone() for p in module.parameters()]))
    (y, gx, gp), (y0, gx0, gp0) = results
    torch.testing.assert_close(y, y0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx0, rtol=1e-10, atol=1e-12)
    for g, g0 in zip(gp, gp0):
        torch.testing.assert_close(g, g0, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 3, 2, 2), (1, 3, 2, 9), (1, 3, 3, 2), (3, 3, 33, 17), (2, 3, 64, 48)])
def test_cpu_engine_equals_the_published_stages(shape):
    """CPU inference runs the CPU engine (numpy + numba, channels-last, the fuse convolution split
    by branch, the attentions' statistics from one numba pass): every pixel must be the published
    one, each sample on its own (one sample of a batch is flat: its gradients are all 0)."""
    from gmsr_cli.api import load_model
    from gmsr_cli.model import cpu_engine

    model = load_model("gmsr-cave-srgb", device="cpu").module
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    if shape[0] > 1:
        x[1] = 0.25
    with torch.inference_mode():
        assert cpu_engine.supports(model, x)
        fast, published = model(x), model.forward_published(x)
    assert fast.shape == published.shape == (shape[0], 31, *shape[2:])
    torch.testing.assert_close(fast, published, rtol=0, atol=1e-5)
    with torch.enable_grad():
        assert not cpu_engine.supports(model, x)  # training takes the published path


def test_cpu_engine_from_the_weights_file_equals_the_module():
    """``load_model`` on the CPU builds the engine from the file's numpy arrays (no torch module);
    its output is the published network's, and the module it builds on demand holds the same
    weights. An engine follows a module's weights when they change (an optimiser step)."""
    from gmsr_cli.api import load_model
    from gmsr_cli.model.cpu_engine import engine_for

    loaded = load_model("gmsr-cave-srgb", device="cpu")
    assert loaded.engine is not None and loaded.runner is loaded.engine and loaded.backend == "numba"
    rgb = np.random.default_rng(4).random((2, 37, 29, 3), dtype=np.float32)
    got = loaded.engine(rgb)
    with torch.inference_mode():
        want = loaded.module.forward_published(torch.from_numpy(rgb).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    assert got.shape == (2, 37, 29, 31) and got.dtype == np.float32
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-5)
    net = loaded.module
    first = engine_for(net)
    assert engine_for(net) is first
    with torch.no_grad():
        net.conv3[0].bias.add_(0.5)
    assert engine_for(net) is not first
    with torch.inference_mode():
        moved = net(torch.from_numpy(rgb).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert np.abs(moved - got).max() > 0.01


def test_cpu_engine_refuses_what_the_network_cannot_take():
    from gmsr_cli.api import load_model

    engine = load_model("gmsr-cave-srgb", device="cpu").engine
    with pytest.raises(ValueError, match="H, W >= 2"):
        engine(np.zeros((1, 1, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        engine(np.zeros((1, 5, 5, 4), np.float32))


def test_cpu_engine_kernels_equal_torchs_operations():
    """The engine's own kernels (gmsr_cli/model/numba_stage.py) against the PyTorch operations
    they stand for: LayerNorm, the 7 x 7 convolution with its sigmoid, and the fuse branches' sum
    with the exact GELU and the residual (its erf is a polynomial: within float32 rounding)."""
    from gmsr_cli.model.numba_stage import conv7x7_sigmoid, fuse_gelu_add_, layer_norm

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((997, 31)) * 3).astype(np.float32)
    gamma, beta = rng.standard_normal(31).astype(np.float32), rng.standard_normal(31).astype(np.float32)
    out = np.empty_like(x)
    layer_norm(x, gamma, beta, np.float32(1e-5), out)
    want = F.layer_norm(torch.from_numpy(x), (31,), torch.from_numpy(gamma), torch.from_numpy(beta), 1e-5)
    np.testing.assert_allclose(out, want.numpy(), rtol=0, atol=2e-6)

    for h, w in ((37, 41), (3, 2), (2, 9)):  # maps smaller than the kernel too
        pooled = (rng.random((2, 2, h, w)) * 4 - 2).astype(np.float32)
        weight = rng.standard_normal((2, 7, 7)).astype(np.float32)
        gate = np.empty((2, h, w), np.float32)
        conv7x7_sigmoid(pooled, weight, gate)
        want = torch.sigmoid(F.conv2d(torch.from_numpy(pooled), torch.from_numpy(weight)[None], padding=3))[:, 0]
        np.testing.assert_allclose(gate, want.numpy(), rtol=0, atol=2e-6)

    z, spatial, spectral, residual = (rng.standard_normal((1000, 31)).astype(np.float32) * 4 for _ in range(4))
    bias, s_pix = rng.standard_normal(31).astype(np.float32), rng.random(1000).astype(np.float32)
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    summed = ((t(z) + t(bias)) + t(s_pix)[:, None] * t(spatial)) + t(spectral)
    want = F.gelu(summed) + t(residual)
    fuse_gelu_add_(z, bias, s_pix, spatial, spectral, residual)
    np.testing.assert_allclose(z, want.numpy(), rtol=2e-7, atol=2e-6)
    inputs = np.linspace(-12, 12, 24001, dtype=np.float32).reshape(-1, 1)  # GELU alone, both tails
    line = inputs.copy()
    zeros = np.zeros_like(line)
    fuse_gelu_add_(line, np.zeros(1, np.float32), np.zeros(len(line), np.float32), zeros, zeros, zeros)
    np.testing.assert_allclose(line, F.gelu(t(inputs)).numpy(), rtol=2e-7, atol=1e-6)
    exact = F.gelu(t(inputs.astype(np.float64))).numpy()  # within about one float32 ulp of it
    assert (np.abs(line - exact) <= 1e-7 + 1.2e-7 * np.abs(exact)).all()
