"""The ``mamba`` backend: mamba-ssm's CUDA selective-scan kernel (the published configuration).

mamba-ssm is optional (``pip install "gmsr-cli[mamba]"``, compiled against the local CUDA
PyTorch). Its Mamba-1 ``selective_scan_cuda`` extension is no longer in its default build, so a
package that imports can still lack the kernel: ``unavailable_reason`` checks the extension
itself, and ``auto`` then falls through to the next backend.
"""

from __future__ import annotations

import importlib

from ..errors import BackendError


def unavailable_reason(device_type: str) -> str | None:
    """Why this backend cannot run here (None if it can): mamba-ssm or its CUDA extension missing."""
    try:
        importlib.import_module("mamba_ssm.ops.selective_scan_interface")
    except Exception as exc:  # ImportError, or any failure inside the optional package
        return f"mamba-ssm does not import ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    try:
        importlib.import_module("selective_scan_cuda")
    except Exception:
        return ("mamba-ssm is installed without its Mamba-1 CUDA extension (selective_scan_cuda); "
                "reinstall it with MAMBA_FORCE_BUILD=TRUE MAMBA_KEEP_CUDA_BUILD=TRUE")
    return None


def selective_scan_mamba(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False):
    """mamba-ssm's CUDA kernel; same contract as ``selective_scan_reference``; CUDA tensors only."""
    if u.device.type != "cuda":
        raise BackendError(f"the 'mamba' scan backend needs CUDA tensors, got {u.device}; use --backend auto")
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    return selective_scan_fn(u.float().contiguous(), delta.float().contiguous(), A.float().contiguous(),
                             B.float().contiguous(), C.float().contiguous(),
                             None if D is None else D.float().contiguous(), z=None,
                             delta_bias=None if delta_bias is None else delta_bias.float().contiguous(),
                             delta_softplus=delta_softplus)
