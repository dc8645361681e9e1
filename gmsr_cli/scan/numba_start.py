"""Starting numba's CPU target, for the `gmsr` command without its BLAS probe.

When numba's CPU target starts (at the first kernel call, cached or not), it imports
``scipy.linalg.cython_blas``, if SciPy is installed, to learn whether ``np.dot`` and friends can
be compiled: about 0.1 s on the 2-core VM (`benchmarks/bench_e2e_parts.py numba-start`). No gmsr
kernel calls BLAS. So the `gmsr` command (``skip_blas_probe``, called by its console entry point
only: in a library user's process their own numba code may need BLAS) starts the target with
``scipy.linalg`` hidden; numba then records that it has no BLAS for that process, and
``scipy.linalg`` imports normally afterwards. Importing this module imports nothing heavy.
"""

from __future__ import annotations

import importlib.abc
import sys

_skip_blas_probe = False


def skip_blas_probe() -> None:
    """Start numba's CPU target without BLAS in this process (the `gmsr` command's own process)."""
    global _skip_blas_probe
    _skip_blas_probe = True


class _HideScipyLinalg(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "scipy.linalg" or name.startswith("scipy.linalg."):
            raise ImportError(f"{name} is hidden while numba's CPU target starts (gmsr_cli.scan.numba_start)")
        return None


def start_cpu_target() -> None:
    """Called when the numba kernels are imported: after ``skip_blas_probe``, start the CPU target
    now, with scipy.linalg hidden; otherwise leave numba to start it at the first call."""
    if not _skip_blas_probe or "scipy.linalg" in sys.modules:
        return
    from numba.core.registry import cpu_target

    finder = _HideScipyLinalg()
    sys.meta_path.insert(0, finder)
    try:
        cpu_target.target_context.refresh()
    finally:
        sys.meta_path.remove(finder)
