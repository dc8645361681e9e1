"""What SS2D's generated numba kernels share: lane layout, walk order, source pieces and the kernel cache.

Both SS2D kernel families (``numba_ss2d_infer``: inference, one direction per call;
``numba_ss2d_train``: training, forward and backward over all four directions) are Python source
generated with the N states unrolled, so that a step is one straight-line body per channel that
LLVM vectorises across the channels (the SIMD lanes). The generated source for N = 16 and the dt
ranks of GMSR-Net is kept in ``_numba_ss2d_*_n16.py`` so numba caches its machine code on disk;
other shapes are generated and compiled on first use. Tests pin each generated file to its
generator.
"""

from __future__ import annotations

import importlib
import math
import threading
from typing import Callable, Iterable

# dt ranks with a kernel in the generated files (GMSR-Net's d_model 10, 20, 31 give 1, 2, 2).
CACHED_RANKS = (1, 2)
CACHED_STATES = 16

# The helpers every generated kernel may call (from gmsr_cli.scan.numba_math).
_IMPORTS = ("import numpy as np\n"
            "from numba import njit, prange\n\n"
            "from gmsr_cli.scan.numba_math import (FASTMATH, _exp2_nonpos, _flush_denormals_begin,\n"
            "                                      _flush_denormals_end, _prefetch, _softplus)\n")


def _lane_group() -> int:
    # LLVM vectorises the lane loop 16 wide where AVX-512 is there and not tuned down to 256-bit
    # vectors (seen on AMD Zen 4 with numba's LLVM), and then runs a remainder of 8 lanes in
    # 4-wide pieces at 1.5 times the cost of 16 lanes (measured). Padding to 16 there avoids any
    # remainder; elsewhere (AVX2, or AVX-512 with 256-bit vectors) 8 is enough.
    try:
        from llvmlite import binding

        return 16 if "+avx512f" in binding.get_host_cpu_features().flatten() else 8
    except Exception:  # no feature query on this platform: the smaller padding is always correct
        return 8


# Channels come in whole groups of this many (the caller pads the channel axis with zero
# weights), so that every lane loop runs whole SIMD vectors, no scalar or narrow remainder.
LANE_GROUP = _lane_group()


def padded_channels(channels: int) -> int:
    """The channel count rounded up to whole lane groups (what the arrays must be padded to)."""
    return math.ceil(channels / LANE_GROUP) * LANE_GROUP


def walk_lines(indent: str, direction: str) -> list[str]:
    """Source that sets start, outer, inner, n_outer, n_inner for direction ``direction`` (0..3:
    rows, columns, rows reversed, columns reversed; needs ``length``, ``height``, ``width``), so
    that pixel p = start + i * outer + j * inner (i < n_outer, j < n_inner) walks the direction's
    sequence in order: SS2D's four scan orders by index arithmetic, no flipped or transposed copy."""
    return [
        f"{indent}if {direction} == 0:",
        f"{indent}    start, outer, inner, n_outer, n_inner = 0, width, 1, height, width",
        f"{indent}elif {direction} == 1:",
        f"{indent}    start, outer, inner, n_outer, n_inner = 0, 1, width, width, height",
        f"{indent}elif {direction} == 2:",
        f"{indent}    start, outer, inner, n_outer, n_inner = length - 1, -width, -1, height, width",
        f"{indent}else:",
        f"{indent}    start, outer, inner, n_outer, n_inner = length - 1, -1, -width, width, height",
    ]


def load_parameter_lines(n_state: int, rank: int, row: int, indent: str, lanes: str, a2: str, bias: str,
                         skip: str, weight: str, o_weight: int) -> list[str]:
    """Source that copies one direction's parameters into the scratch array P, lane c of each row:
    A * log2(e) in rows 0..N-1, the dt bias in row N, D in row N+1, the dt weight rows from offset
    ``o_weight``. ``a2``, ``bias``, ``skip``, ``weight`` are index expressions in ``c`` (and ``s``,
    ``r`` for the state and rank), so each kernel keeps its own array layout."""
    return [
        f"{indent}for c in range({lanes}):",
        f"{indent}    for s in range({n_state}):",
        f"{indent}        P[s * {row} + c] = {a2}",
        f"{indent}    P[{n_state * row} + c] = {bias}",
        f"{indent}    P[{(n_state + 1) * row} + c] = {skip}",
        f"{indent}    for r in range({rank}):",
        f"{indent}        P[{o_weight} + r * {row} + c] = {weight}",
    ]


def state_update_lines(n_state: int, rank: int, row: int, indent: str) -> list[str]:
    """One step of the state recurrence for lane c, the states unrolled: h_s = exp(dt A_s) h_s +
    dt u B_s and acc += h_s C_s, with A_s * log2(e) in row s of P, h_s in row s of S (rows
    ``row`` floats apart), B and C from the step's projection ``pr`` after its ``rank`` dt inputs.
    (A loop over the states would stay scalar: LLVM vectorises only innermost loops, and not ones
    of a known short length.)"""
    lines = []
    for s in range(n_state):
        lines += [
            f"{indent}h = _exp2_nonpos(dt * P[{s * row} + c]) * S[{s * row} + c] + du * pr[{rank + s}]",
            f"{indent}S[{s * row} + c] = h",
            f"{indent}acc += h * pr[{rank + n_state + s}]",
        ]
    return lines


def module_source(generator: str, target: str, prelude: str, kernels: Iterable[tuple[str, str]],
                  cache: bool = True) -> str:
    """A generated kernel module: header naming its generator ``generator`` (``module.function``)
    and file ``target``, the shared imports, ``prelude`` (module constants), then each kernel
    (decorator with a ``{cache}`` field, source)."""
    module, function = generator.rsplit(".", 1)
    parts = [
        f'"""GENERATED by {generator}(); do not edit. Regenerate with\n'
        f"python -c \"from {module} import {function}; print({function}(), end='')\" > {target}\n"
        '"""\n\n' + _IMPORTS + prelude,
    ]
    for decorator, source in kernels:
        parts.append("\n\n" + decorator.format(cache=", cache=True" if cache else "") + source)
    return "".join(parts)


class KernelCache:
    """Compiled generated kernels by name: taken from the generated module ``module`` (whose
    machine code numba caches on disk) when it holds them, else generated and compiled now
    (``make_source()`` returns a whole module without on-disk caching). Thread-safe."""

    def __init__(self, module: str) -> None:
        self._module = module
        self._kernels: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, name: str, cached: bool, make_source: Callable[[], str]):
        with self._lock:
            kernel = self._kernels.get(name)
            if kernel is None:
                if cached:
                    kernel = getattr(importlib.import_module(self._module), name)
                else:
                    namespace: dict = {}
                    exec(compile(make_source(), f"<gmsr_cli generated {name}>", "exec"), namespace)
                    kernel = namespace[name]
                self._kernels[name] = kernel
        return kernel
