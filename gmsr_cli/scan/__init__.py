"""The selective scan behind one function, with named backends and ``auto``.

Backends (all compute exactly the recurrence of the spec, in float32):
  reference  plain sequential loop; the test oracle; any device; slow.
  numba      compiled CPU kernels with an exact backward pass; the fast CPU choice, also for training.
  chunked    vectorised PyTorch, differentiable by autograd; any device (CUDA without mamba-ssm).
  mamba      mamba-ssm's CUDA kernel (``pip install "gmsr-cli[cuda]"``); CUDA tensors only.
``auto`` takes numba on the CPU and mamba on CUDA, else chunked. Asking for a backend that cannot
run gives a BackendError that says how to fix it; there is no silent fallback.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Callable

import torch

from ..errors import BackendError

BACKEND_NAMES = ("auto", "reference", "numba", "chunked", "mamba")

ScanFn = Callable[..., torch.Tensor]


def _device_type(device: torch.device | str | None) -> str:
    return torch.device(device if device is not None else "cpu").type


@functools.lru_cache(maxsize=None)
def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def _mamba_available() -> bool:
    # find_spec is not enough: mamba_ssm imports but fails without its compiled CUDA extension.
    if not _importable("mamba_ssm"):
        return False
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except Exception:  # any failure of the optional extension means "not available"
        return False
    return True


def available_backends(device: torch.device | str | None = None) -> list[str]:
    """Concrete backends that can run on ``device`` here, fastest first."""
    kind = _device_type(device)
    names = []
    if kind == "cuda" and _mamba_available():
        names.append("mamba")
    if kind == "cpu" and _importable("numba"):
        names.append("numba")
    names += ["chunked", "reference"]
    return names


def resolve_backend(name: str, device: torch.device | str | None = None) -> str:
    """Turn ``name`` (possibly ``auto``) into a concrete backend that runs on ``device``."""
    kind = _device_type(device)
    if name not in BACKEND_NAMES:
        raise BackendError(f"unknown scan backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        return available_backends(device)[0]
    if name == "mamba":
        if kind != "cuda":
            raise BackendError("the 'mamba' backend runs only on CUDA tensors; use --device cuda or --backend auto")
        if not _mamba_available():
            raise BackendError("the 'mamba' backend needs mamba-ssm with its CUDA extension: "
                               'pip install "gmsr-cli[cuda]" (on a machine with CUDA PyTorch), or use --backend auto')
    if name == "numba":
        if kind != "cpu":
            raise BackendError("the 'numba' backend runs only on the CPU; use --backend auto on a GPU")
        if not _importable("numba"):
            raise BackendError("the 'numba' backend needs numba: pip install numba, or use --backend chunked")
    return name


def get_scan_function(name: str) -> ScanFn:
    """The scan function of a concrete backend name (see ``resolve_backend``)."""
    if name == "reference":
        from .reference import selective_scan_reference
        return selective_scan_reference
    if name == "chunked":
        from .chunked import selective_scan_chunked
        return selective_scan_chunked
    if name == "numba":
        from .backends import selective_scan_numba
        return selective_scan_numba
    if name == "mamba":
        from .backends import selective_scan_mamba
        return selective_scan_mamba
    raise BackendError(f"{name!r} is not a concrete scan backend; resolve it with resolve_backend first")


def selective_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, backend="auto"):
    """Mamba-1 selective scan.

    u, delta: (batch, channels, L); A: (channels, N), negative; B, C: (batch, groups, N, L), channel
    d uses group d // (channels // groups); D, delta_bias: (channels,) or None. Returns
    y (batch, channels, L) float32 with y = sum_n C h + D u, h_n(l) = exp(delta A_n) h_n(l-1) +
    delta B_n u, delta = softplus(delta + delta_bias) when delta_softplus.
    """
    fn = get_scan_function(resolve_backend(backend, u.device))
    return fn(u, delta, A, B, C, D, delta_bias, delta_softplus)
