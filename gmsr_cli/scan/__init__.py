"""The selective scan behind one function, with named backends and ``auto`` (the table: ``registry.py``).

Backends (all compute exactly the recurrence of the spec, in float32):
  triton     fused SS2D kernels in Triton (forward and backward); CUDA (CPU only in Triton's
             interpreter, for tests).
  mamba      mamba-ssm's CUDA kernel (``pip install "gmsr-cli[mamba]"``); CUDA tensors only.
  numba      compiled CPU kernels with an exact backward pass; the fast CPU choice, also for training.
  chunked    vectorised PyTorch, differentiable by autograd; any device.
  reference  plain sequential loop; the test oracle; any device; slow.
``auto`` takes numba on the CPU; triton, else mamba, else chunked on CUDA. Asking for a backend that
cannot run gives a BackendError that says how to fix it; there is no silent fallback.

Modules: ``reference``, ``chunked``, ``mamba``, ``numba_scan`` (1-D scans); ``numba_ss2d_infer``
(+ ``numba_ss2d_parts``) and ``numba_ss2d_train`` (SS2D's fused CPU inference and training ops,
from generators sharing ``numba_codegen``; ``_numba_*_n16.py`` are their generated kernels);
``numba_math`` (what numba kernels share); ``triton_ss2d`` (the fused SS2D kernel in Triton).
"""

from __future__ import annotations

from .registry import (BACKEND_NAMES, BACKENDS, Backend, SS2DOps, available_backends, backend_help, bind_ss2d,
                       device_type, get_backend, load_scan, resolve_backend, unavailable_reason)

__all__ = ["BACKEND_NAMES", "BACKENDS", "Backend", "SS2DOps", "available_backends", "backend_help", "bind_ss2d",
           "device_type", "get_backend", "get_scan_function", "load_scan", "resolve_backend", "selective_scan",
           "unavailable_reason"]


def get_scan_function(name: str):
    """The 1-D scan function of a concrete backend name (see ``resolve_backend``)."""
    return load_scan(name)


def selective_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, backend="auto"):
    """Mamba-1 selective scan.

    u, delta: (batch, channels, L); A: (channels, N), negative; B, C: (batch, groups, N, L), channel
    d uses group d // (channels // groups); D, delta_bias: (channels,) or None. Returns
    y (batch, channels, L) float32 with y = sum_n C h + D u, h_n(l) = exp(delta A_n) h_n(l-1) +
    delta B_n u, delta = softplus(delta + delta_bias) when delta_softplus.
    """
    fn = load_scan(resolve_backend(backend, u.device))
    return fn(u, delta, A, B, C, D, delta_bias, delta_softplus)
