"""Fast CPU selective scan: numba kernels for the forward pass and its exact backward pass.

Why numba: the scan is a recurrence along the sequence, so its speed comes from running the
16 state channels of each step in SIMD lanes and the (batch, channel) chains on all cores, with
an exponential that vectorises. A per-element compiled loop with libm's scalar exp takes about
11 s for the whole network at 512x512 on 2 cores; this kernel, with a polynomial exp2 that LLVM
vectorises, is several times faster (numbers in benchmarks/README.md). numba ships as a wheel
for every platform torch does, so no compiler is needed on the user's machine.

Layout the kernels expect (the wrapper in ``backends.py`` prepares it):
  u, dt: (batch, channels, L) float32, dt already softplus-ed and biased;
  A2: (channels, N) float32, A * log2(e);
  Bt, Ct: (batch, groups, L, N) float32 (state index last, contiguous for SIMD).

Also here: the vectorisable helpers of the fused SS2D inference kernel (fused.py, ss2d_cpu.py):
``_exp2_nonpos``, ``_exp_nonpos``, ``_softplus``, and small LLVM intrinsics: a float-to-bits
cast, a prefetch hint, and the flush-to-zero switch that keeps decaying states out of the slow
denormal range.
"""

from __future__ import annotations

import math
import platform

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

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


@njit(parallel=True, fastmath=True, cache=True)
def scan_forward(u, dt, A2, Bt, Ct, chunk, states):
    """y[b, d, l] = sum_n C h (no D term). Fills states[b, d, c, :] with h before chunk c's first
    step when ``chunk`` > 0 (for the backward pass); pass chunk=0 and an empty array otherwise."""
    batch, channels, length = u.shape
    groups = Bt.shape[1]
    n_state = A2.shape[1]
    per_group = channels // groups
    y = np.empty((batch, channels, length), dtype=np.float32)
    for job in prange(batch * channels):
        b = job // channels
        d = job % channels
        g = d // per_group
        h = np.zeros(n_state, dtype=np.float32)
        a2 = A2[d]
        for step in range(length):
            if chunk > 0 and step % chunk == 0:
                states[b, d, step // chunk, :] = h
            dts = dt[b, d, step]
            du = dts * u[b, d, step]
            bl = Bt[b, g, step]
            cl = Ct[b, g, step]
            acc = _F(0.0)
            for n in range(n_state):
                hn = _exp2(dts * a2[n]) * h[n] + du * bl[n]
                h[n] = hn
                acc += hn * cl[n]
            y[b, d, step] = acc
    return y


@njit(parallel=True, fastmath=True, cache=True)
def scan_backward(u, dt, A2, Bt, Ct, dy, chunk, states):
    """Gradients of sum(dy * y) for y = scan_forward(...) with respect to u, dt, A, Bt, Ct.

    For each chunk, from the last: (1) run its forward steps again from the saved start state,
    keeping states and decays in small scratch arrays; (2) walk it backwards for dLoss/dh, the
    only truly sequential part; (3) form every gradient from those, step by step independently
    (simple loops that vectorise). Work is split over (batch, group) so that dB and dC of a
    group are written by one thread; dA (for A = A2 ln 2) comes back per batch item.
    """
    batch, channels, length = u.shape
    groups = Bt.shape[1]
    n_state = A2.shape[1]
    per_group = channels // groups
    n_chunks = (length + chunk - 1) // chunk
    du_out = np.zeros((batch, channels, length), dtype=np.float32)
    ddt_out = np.zeros((batch, channels, length), dtype=np.float32)
    dA_out = np.zeros((batch, channels, n_state), dtype=np.float32)
    dB_out = np.zeros((batch, groups, length, n_state), dtype=np.float32)
    dC_out = np.zeros((batch, groups, length, n_state), dtype=np.float32)
    for job in prange(batch * groups):
        b = job // groups
        g = job % groups
        hs = np.empty((chunk + 1, n_state), dtype=np.float32)  # hs[i] = state before step i
        dec = np.empty((chunk, n_state), dtype=np.float32)
        gs = np.empty((chunk, n_state), dtype=np.float32)  # dLoss/dh after step i
        grad = np.empty(n_state, dtype=np.float32)
        dA = np.empty(n_state, dtype=np.float32)
        a = np.empty(n_state, dtype=np.float32)
        for d in range(g * per_group, (g + 1) * per_group):
            for n in range(n_state):
                a[n] = A2[d, n] * _LN2
                grad[n] = 0.0
                dA[n] = 0.0
            for c in range(n_chunks - 1, -1, -1):
                start = c * chunk
                steps = min(chunk, length - start)
                for n in range(n_state):
                    hs[0, n] = states[b, d, c, n]
                for i in range(steps):
                    dts = dt[b, d, start + i]
                    du = dts * u[b, d, start + i]
                    for n in range(n_state):
                        e = _exp2(dts * A2[d, n])
                        dec[i, n] = e
                        hs[i + 1, n] = e * hs[i, n] + du * Bt[b, g, start + i, n]
                for i in range(steps - 1, -1, -1):
                    dys = dy[b, d, start + i]
                    for n in range(n_state):
                        gn = grad[n] + dys * Ct[b, g, start + i, n]
                        gs[i, n] = gn
                        grad[n] = gn * dec[i, n]
                for i in range(steps):
                    step = start + i
                    dts = dt[b, d, step]
                    us = u[b, d, step]
                    dys = dy[b, d, step]
                    dtu = dts * us
                    ddt = _F(0.0)
                    dus = _F(0.0)
                    for n in range(n_state):
                        gn = gs[i, n]
                        t = gn * hs[i, n] * dec[i, n]  # dLoss/d(dt * A) through the decay
                        bn = Bt[b, g, step, n]
                        ddt += t * a[n] + gn * bn * us
                        dus += gn * bn
                        dA[n] += t * dts
                        dB_out[b, g, step, n] += gn * dtu
                        dC_out[b, g, step, n] += dys * hs[i + 1, n]
                    ddt_out[b, d, step] = ddt
                    du_out[b, d, step] = dus * dts
            for n in range(n_state):
                dA_out[b, d, n] = dA[n]
    return du_out, ddt_out, dA_out, dB_out, dC_out
