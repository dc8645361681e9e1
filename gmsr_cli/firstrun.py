"""The first run on a machine: whether the CPU kernels still have to be compiled, so that it can be said.

The numba kernels of the CPU backend are compiled on their first call and cached on disk (numba
keeps them in the package's __pycache__ when that is writable, else in the user's cache folder,
~/.cache/numba or $NUMBA_CACHE_DIR, so a read-only install caches them too). Until then the first
tile takes 15-40 s with nothing to show for it, which looks like a hang unless it is said.
"""

from __future__ import annotations

import importlib
import os

# The modules whose cached kernels a CPU reconstruction calls (scan backend "numba").
INFERENCE_KERNEL_MODULES = ("gmsr_cli.scan.numba_ss2d_parts", "gmsr_cli.scan._numba_ss2d_infer_n16",
                            "gmsr_cli.model.numba_attention", "gmsr_cli.model.numba_stage")
# Measured by benchmarks/first_run.py (docs/performance.md).
FIRST_RUN_NOTE = "first run: compiling the CPU kernels, once (15-40 s); later runs reuse them"


def kernels_to_compile(modules: tuple[str, ...] = INFERENCE_KERNEL_MODULES) -> int | None:
    """How many cached numba kernels of ``modules`` have no compiled copy on disk yet; None when
    that cannot be told (numba's cache layout changed, a module is missing)."""
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:
        return None
    missing = 0
    try:
        for name in modules:
            module = importlib.import_module(name)
            for value in vars(module).values():
                if not isinstance(value, CPUDispatcher):
                    continue
                index = getattr(getattr(getattr(value, "_cache", None), "_cache_file", None), "_index_path", None)
                if index is not None and not os.path.exists(index):
                    missing += 1
    except Exception:  # numba internals are not an API: never let this stop a run
        return None
    return missing


def first_run_note(device: str, backend: str) -> str | None:
    """The note to show before a reconstruction that will compile the CPU kernels, or None."""
    if str(device) != "cpu" or "numba" not in str(backend):
        return None
    return FIRST_RUN_NOTE if kernels_to_compile() else None
