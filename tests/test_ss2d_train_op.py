"""The fused four-direction SS2D scan used for CPU training, against the per-direction composition
of the reference scan: values and every gradient."""

import pytest
import torch

from gmsr_cli.model.layers import SS2D, scan_four_directions
from gmsr_cli.scan import get_scan_function

pytest.importorskip("numba")
from gmsr_cli.scan.numba_ss2d_train import ss2d_scan_numba  # noqa: E402


def _composed_reference(module: SS2D, x: torch.Tensor) -> torch.Tensor:
    """The four scans of the spec one by one through the reference backend, summed in pixel order."""
    return scan_four_directions(x, module.x_proj_weight, module.dt_projs_weight, module.dt_projs_bias,
                                module.A_logs, module.Ds, get_scan_function("reference"))


@pytest.mark.parametrize("channels, d_state", [(10, 16), (31, 16), (10, 5)])  # dt_rank 1 and 2; N = 5 is compiled on first use
@pytest.mark.parametrize("size", [(1, 3), (5, 7), (9, 23)])  # 9*23 = 207 steps: 6 full chunks of 32 and a partial one
def test_fused_scan_matches_reference_with_gradients(channels, d_state, size):
    torch.manual_seed(channels + size[0])
    module = SS2D(channels, d_state=d_state)
    with torch.no_grad():  # move away from the initialisation: strong decay, wide dt
        module.A_logs.add_(torch.randn_like(module.A_logs) * 2)
        module.dt_projs_bias.add_(torch.randn_like(module.dt_projs_bias) * 3)
        module.x_proj_weight.mul_(3)
    h, w = size
    x = torch.randn(2, module.d_inner, h, w, requires_grad=True)
    params = [x, module.x_proj_weight, module.dt_projs_weight, module.dt_projs_bias, module.A_logs, module.Ds]
    weight = torch.randn(2, module.d_inner, h * w)
    results = []
    for fn in (_composed_reference, None):
        for p in params:
            p.grad = None
        y = _composed_reference(module, x) if fn else ss2d_scan_numba(x, *params[1:])
        (y * weight).sum().backward()
        results.append([y.detach()] + [p.grad.clone() for p in params])
    for got, want in zip(results[1], results[0]):
        scale = want.abs().max().item()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * scale)


def test_generated_training_kernels_are_current():
    """_numba_ss2d_train_n16.py is generated source (cached by numba); it must match its generator."""
    from pathlib import Path

    from gmsr_cli.scan import numba_ss2d_train

    generated = Path(numba_ss2d_train.__file__).parent / "_numba_ss2d_train_n16.py"
    assert generated.read_text() == numba_ss2d_train.module_source()


def test_too_many_channels_is_a_clear_error():
    from gmsr_cli.errors import BackendError

    module = SS2D(40)  # d_inner 80 > 64 lanes
    x = torch.randn(1, module.d_inner, 3, 3)
    with pytest.raises(BackendError, match="at most 64 channels"):
        ss2d_scan_numba(x, module.x_proj_weight, module.dt_projs_weight, module.dt_projs_bias, module.A_logs, module.Ds)


def test_layers_wider_than_the_training_kernels_train_through_the_per_direction_path():
    """SS2D binds the fused training op only where it fits (at most MAX_LANES channels); a wider
    layer binds none and its gradients come from the per-direction path with the numba 1-D scan."""
    from gmsr_cli.scan.numba_codegen import padded_channels
    from gmsr_cli.scan.numba_ss2d_train import MAX_LANES

    narrow, wide = SS2D(31, backend="numba"), SS2D(40, backend="numba")
    assert padded_channels(narrow.d_inner) <= MAX_LANES < padded_channels(wide.d_inner)
    assert narrow._ops.training is not None and wide._ops.training is None
    x = torch.randn(1, 4, 5, 40, requires_grad=True)
    wide(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
