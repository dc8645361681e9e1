"""Vectorisable float32 math and LLVM intrinsics shared by every numba scan kernel.

Why numba: the scan is a recurrence along the sequence, so its speed comes from running many
state channels in SIMD lanes and the independent chains on all cores, with an exponential that
vectorises. A per-element compiled loop with libm's scalar exp takes about 11 s for the whole
network at 512x512 on 2 cores; the kernels built on these helpers, with a polynomial exp2 that
LLVM vectorises, are several times faster (numbers in benchmarks/README.md). numba ships as a
wheel for every platform torch does, so no compiler is needed on the user's machine.

Here: ``_exp2`` (any argument), ``_exp2_nonpos`` and ``_exp_nonpos`` (non-positive arguments, as
every decay is), ``_softplus``, and small LLVM intrinsics: a float-to-bits cast, a prefetch hint,
and the flush-to-zero switch that keeps decaying states out of the slow denormal range.
"""

from __future__ import annotations

import math
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .numba_start import start_cpu_target

start_cpu_target()  # the `gmsr` command: numba's CPU target starts here, without its BLAS probe

_F = np.float32
# 2^f on [-0.5, 0.5], least-squares in relative error: max relative error 1e-7 in float32.
_P0, _P1, _P2, _P3 = _F(1.0), _F(0.693147206), _F(0.240226466), _F(0.0555032900)
_P4, _P5, _P6 = _F(0.00961851953), _F(0.00133998604), _F(0.000153375768)
_LO, _HI, _HALF, _BIAS = _F(-126.0), _F(126.0), _F(0.5), np.int32(127)
_LN2 = _F(math.log(2.0))


@intrinsic
def _bits_to_float32(typingctx, bits):
    """Reinterpret an int32 as float32 (what C does with a union); vectorises to nothing."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@njit(inline="always", fastmath=True)
def _exp2(t):
    """2**t for float32 t; clamps to [2**-126, 2**126], which is 0 or inf for this use."""
    t = min(max(t, _LO), _HI)
    k = math.floor(t + _HALF)
    f = t - k
    p = _P6
    p = p * f + _P5
    p = p * f + _P4
    p = p * f + _P3
    p = p * f + _P2
    p = p * f + _P1
    p = p * f + _P0
    return p * _bits_to_float32((np.int32(k) + _BIAS) << 23)


@intrinsic
def _float32_to_bits(typingctx, value):
    """Reinterpret a float32 as int32 (the inverse of ``_bits_to_float32``)."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to start loading the cache line of ``array.flat[index]`` (C-contiguous array);
    only a hint: nothing is read, and no address can fault. Used where the hardware prefetchers
    cannot see the pattern: walks with a stride of a whole image row cross a page every step."""
    sig = types.void(array, types.intp)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
        # read, keep in all cache levels, data cache
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), i8p),
                          ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "x86", "i386", "i686")
_FTZ_DAZ = 0x8040  # MXCSR bits: flush denormal results to zero, treat denormal inputs as zero


@intrinsic
def _flush_denormals_begin(typingctx):
    """Set flush-to-zero and denormals-are-zero for this thread; returns the old MXCSR to give
    to ``_flush_denormals_end``. A state that decays towards 0 (a dark or padded image region,
    a strong decay) passes through the denormal range, where each multiplication takes a slow
    microcode path (measured: 8.2 instead of 5.3 ns per channel and step); flushing them
    changes results by less than 1e-38. A no-op returning 0 off x86."""
    sig = types.int32()

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not _X86:
            return ir.Constant(i32, 0)
        i8p = ir.IntType(8).as_pointer()
        slot = cgutils.alloca_once(builder, i32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p])
        builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr"),
                     [builder.bitcast(slot, i8p)])
        old = builder.load(slot)
        builder.store(builder.or_(old, ir.Constant(i32, _FTZ_DAZ)), slot)
        builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr"),
                     [builder.bitcast(slot, i8p)])
        return old

    return sig, codegen


@intrinsic
def _flush_denormals_end(typingctx, saved):
    """Restore the MXCSR saved by ``_flush_denormals_begin``."""
    sig = types.void(types.int32)

    def codegen(context, builder, signature, args):
        if _X86:
            i8p = ir.IntType(8).as_pointer()
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            fnty = ir.FunctionType(ir.VoidType(), [i8p])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr"),
                         [builder.bitcast(slot, i8p)])
        return context.get_dummy_value()

    return sig, codegen


# Fast-math without reassociation: the kernels that use these helpers need no reordered sums,
# and reassociation could undo the two-constant range reduction in ``_exp_nonpos``.
FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}
_LO_NONPOS = _F(-125.0)
_SHIFT = np.int32(23)


# 2^f on [-0.5, 0.5] with p(0) = 1 exactly (so dt = 0 gives a decay of exactly 1), minimax in
# relative error: 1.9e-7 evaluated in float32. One degree less than _P0.._P6: one FMA in 17 per
# state and step saved, at no cost to the tests' 1e-5.
_R1, _R2, _R3 = _F(0.6931470036506653), _F(0.24022242426872253), _F(0.05550733581185341)
_R4, _R5 = _F(0.009671507403254509), _F(0.0013264711014926434)


@njit(inline="always", fastmath=FASTMATH)
def _exp2_nonpos(t):
    """2**t for float32 t <= 0 (the decay exp(dt * A) with dt >= 0, A < 0), relative error 2e-7.

    Cheaper than ``_exp2``: no upper clamp, rint instead of floor(t + 0.5), a degree-5
    polynomial, and the power of two added to the exponent bits instead of multiplied in. The
    floor of -125 keeps the result a normal number (>= 2**-125.5), so no denormal ever reaches
    the multiplications that follow.
    """
    t = max(t, _LO_NONPOS)
    k = np.rint(t)
    f = t - k
    p = _R5
    p = p * f + _R4
    p = p * f + _R3
    p = p * f + _R2
    p = p * f + _R1
    p = p * f + _F(1.0)
    return _bits_to_float32(_float32_to_bits(p) + (np.int32(k) << _SHIFT))


_LOG2E32 = _F(1.0 / math.log(2.0))
_LN2_HI = _F(0.693145751953125)  # ln 2 split so that k * _LN2_HI is exact for |k| < 2**11
_LN2_LO = _F(math.log(2.0) - 0.693145751953125)


@njit(inline="always", fastmath=FASTMATH)
def _exp_nonpos(a):
    """exp(a) for float32 a <= 0, relative error 1e-7 (range reduction by k ln 2 in two parts,
    so the error does not grow with |a| as it does for 2**(a * log2(e)))."""
    a = max(a, _F(-86.0))
    k = np.rint(a * _LOG2E32)
    r = (a - k * _LN2_HI) - k * _LN2_LO
    f = r * _LOG2E32
    p = _P6
    p = p * f + _P5
    p = p * f + _P4
    p = p * f + _P3
    p = p * f + _P2
    p = p * f + _P1
    p = p * f + _P0
    return _bits_to_float32(_float32_to_bits(p) + (np.int32(k) << _SHIFT))


_SQRT2_M1 = _F(math.sqrt(2.0) - 1.0)
_ONE, _TWO, _THREE, _ZERO = _F(1.0), _F(2.0), _F(3.0), _F(0.0)
# 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), |s| <= 3 - 2 sqrt(2) = 0.1716: relative error 3e-9.
_Q1, _Q3, _Q5, _Q7, _Q9, _Q11 = _F(2.0), _F(2.0 / 3), _F(2.0 / 5), _F(2.0 / 7), _F(2.0 / 9), _F(2.0 / 11)


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _softplus(x):
    """log(1 + exp(x)) for float32 x, branch-free so that loops over it vectorise; relative error
    3e-7 for x > -80. Equals x for x > 20 to float32 precision, as PyTorch's softplus does.

    softplus(x) = max(x, 0) + log1p(e) with e = exp(-|x|) in (0, 1]. log1p(e) = k ln 2 + log(m)
    with 1 + e = 2**k m, m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m - 1) / (m + 1),
    written as e / (2 + e) (k = 0) or (e - 1) / (3 + e) (k = 1) so that no bits of a small e cancel.
    """
    e = _exp_nonpos(-abs(x))
    big = e > _SQRT2_M1
    s = (e - _ONE if big else e) / (e + (_THREE if big else _TWO))
    z = s * s
    log_m = s * (_Q1 + z * (_Q3 + z * (_Q5 + z * (_Q7 + z * (_Q9 + z * _Q11)))))
    return max(x, _ZERO) + log_m + (_LN2 if big else _ZERO)
