"""SS2D's four-direction selective scan for GPU inference: chunked Triton kernels, no gradients.

What it computes: for x (B, H, W, d) channels-last (SS2D's x after the depthwise conv and SiLU),
the sum over the four scan directions of the Mamba-1 selective scan output including the D * u
skip term, in pixel order -- what ``SS2D.forward`` holds in ``y`` before ``out_norm``. Direction
k's sequence position l is the pixel p of one channels-last array, found by index arithmetic
(in ``_step``): k = 0 rows (p = l), k = 1 columns (p = (l % H) * W + l // H), k = 2 and 3 the same
read from the end (l -> L - 1 - l). No flipped or transposed copies are made.

Why chunked: one program walking a whole sequence of L = H * W steps (a 512 x 512 image is
262144 steps) would leave a GPU nearly idle at batch 1, since only batch x channel blocks
programs could run. The sequence is cut into chunks of ``chunk`` steps and each direction runs
three passes:
  1. ``_chunk_end_states``: every (chunk, channel block, image) program scans its chunk from a
     zero state and stores the chunk's end state h_end (B, chunks, d, N) and the sum of its step
     sizes sum(dt) (B, chunks, d).
  2. ``_carry_states``: one program per (channel block, image) walks the chunks in order,
     H_c = exp(A * sum dt_c) H_{c-1} + h_end_c, and overwrites each h_end with the true state
     entering that chunk. Every factor is a decay <= 1, so nothing overflows; strong decay
     underflows to 0. (A Triton loop, since a Python loop over thousands of chunks would cost a
     launch each.)
  3. ``_chunk_outputs``: every program rescans its chunk from its true start state and adds
     y = sum_n C_n h_n + D u to the output (the first direction stores instead of adding).
With a single chunk, passes 1 and 2 are skipped. The directions run one after the other, each
pixel and channel belongs to one program of a direction, so the load-add-store into y has no
races, the sum is deterministic, and no 4x-size intermediate exists.

In the kernels: x_proj (B*H*W, R + 2N) = x @ x_proj_weight[k].T is one torch matmul per
direction (dt_low, B, C per pixel, in pixel order, into one reused buffer); dt = softplus(
dt_projs_weight[k] @ dt_low + dt_projs_bias[k]) is computed per step and channel in the kernel;
exp(dt A) is exp2(dt A log2(e)) with A pre-scaled on the host; the state (BLOCK_D, N) is float32
in registers.

Block sizes are simple functions of the shapes (``channel_block``, ``chunk_length``,
``num_warps``), not ``triton.autotune`` (which cannot run in the interpreter):
  channel block  32 channels, or 16 where that pads fewer lanes (d = 40: 48 lanes, not 64); the
                 next power of two for d <= 16.
  chunk          about sqrt(L) steps (a power of two in [16, 1024]): passes 1 and 3 take ~chunk
                 dependent steps per program and pass 2 ~L / chunk, so sqrt(L) balances them;
                 on CUDA it is halved (not below 16) until there are 4 programs per SM.
  warps          1 for a state tile of at most 256 values, else 2: the steps within a chunk are
                 sequential, so a program's width only spreads one step's BLOCK_D x N updates.
These are reasoned defaults, not measured on a GPU.

Devices: CUDA tensors run the compiled kernels. CPU tensors run only under Triton's interpreter
(TRITON_INTERPRET=1 in the environment before this module is imported: ``triton.jit`` decides
when it decorates), which is slow and meant for tests. Without triton installed this module still
imports; calling it raises a BackendError that says to ``pip install triton``.
"""

from __future__ import annotations

import contextlib
import math

import torch

from ..errors import BackendError

try:
    import triton
    import triton.language as tl
except ImportError:  # the module must import without triton; the call says what to install
    triton = None

_LOG2E = 1.0 / math.log(2.0)
# Chunk lengths (steps) stay in this range; see the module docstring.
MIN_CHUNK, MAX_CHUNK = 16, 1024
# On CUDA, chunks are halved until there are this many programs per streaming multiprocessor.
PROGRAMS_PER_SM = 4


def triton_available() -> bool:
    """Whether triton could be imported (the kernels exist)."""
    return triton is not None


def interpreter_enabled() -> bool:
    """Whether this module's kernels run in Triton's interpreter (TRITON_INTERPRET=1 was set
    before it was imported), which lets them take CPU tensors."""
    if triton is None:
        return False
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_chunk_outputs, InterpretedFunction)


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def channel_block(channels: int) -> int:
    """Channels per program: 32, or 16 where that pads fewer lanes; the next power of two for
    ``channels`` <= 16."""
    if channels <= 16:
        return _next_pow2(channels)
    return 16 if math.ceil(channels / 16) * 16 < math.ceil(channels / 32) * 32 else 32


def chunk_length(length: int, programs_per_chunk: int, device: torch.device) -> int:
    """Steps per chunk for a sequence of ``length`` steps when each chunk index gives
    ``programs_per_chunk`` programs (batch x channel blocks): about sqrt(length), a power of two
    in [MIN_CHUNK, MAX_CHUNK], on CUDA halved until PROGRAMS_PER_SM programs per SM."""
    chunk = min(MAX_CHUNK, max(MIN_CHUNK, _next_pow2(math.ceil(math.sqrt(length)))))
    if device.type == "cuda":
        target = PROGRAMS_PER_SM * torch.cuda.get_device_properties(device).multi_processor_count
        while chunk > MIN_CHUNK and programs_per_chunk * math.ceil(length / chunk) < target:
            chunk //= 2
    return chunk


def num_warps(block_d: int, block_n: int) -> int:
    """Warps per program: 1 for a state tile of at most 256 values, else 2."""
    return 1 if block_d * block_n <= 256 else 2


if triton is not None:

    @triton.jit
    def _step(h, l, b, length, height, width, d, x_ptr, proj_ptr, w_dt, bias, a2, offs_d, mask_d,
              offs_r, offs_n, mask_n, RANK: tl.constexpr, N: tl.constexpr, DIRECTION: tl.constexpr):
        # One step of the recurrence at direction DIRECTION's sequence position l of image b:
        # returns the new state, u, dt, and the pixel's rows of x (and y) and proj. (Written as
        # one function: each nested call costs milliseconds in the interpreter.)
        if DIRECTION >= 2:  # the reversed directions read the sequence from its end
            l = length - 1 - l
        if DIRECTION % 2 == 1:  # columns: position l is pixel (l % H, l // H)
            l = (l % height) * width + l // height
        row = b * length + l
        u = tl.load(x_ptr + row * d + offs_d, mask=mask_d, other=0.0)
        pr = proj_ptr + row * (RANK + 2 * N)
        dt_low = tl.load(pr + offs_r, mask=offs_r < RANK, other=0.0)
        v = bias + tl.sum(w_dt * dt_low[None, :], axis=1)
        # dt = softplus(v) as PyTorch's to float32 precision: max(v, 0) + log1p(exp(-|v|)), log1p
        # by Kahan's log(1 + e) * e / ((1 + e) - 1), which keeps a small e's bits (log(1 + e)
        # alone loses them: dt ~ 1e-3 would be off by ~1e-4 relative).
        e = tl.exp(-tl.abs(v))
        one_e = 1.0 + e
        exact = one_e == 1.0
        dt = tl.maximum(v, 0.0) + tl.where(exact, e, tl.log(one_e) * (e / tl.where(exact, 1.0, one_e - 1.0)))
        b_in = tl.load(pr + RANK + offs_n, mask=mask_n, other=0.0)
        h = tl.exp2(dt[:, None] * a2) * h + (dt * u)[:, None] * b_in[None, :]
        return h, u, dt, row, pr

    @triton.jit
    def _chunk_end_states(x_ptr, proj_ptr, dtw_ptr, dtb_ptr, a2_ptr, states_ptr, dtsum_ptr,
                          length, height, width, d, n_chunks, chunk,
                          RANK: tl.constexpr, N: tl.constexpr, BLOCK_D: tl.constexpr,
                          BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, DIRECTION: tl.constexpr):
        """Pass 1: scan chunk program_id(0) from a zero state; store its end state (into
        states (B, n_chunks, d, N)) and sum(dt) (into dtsum (B, n_chunks, d))."""
        ci = tl.program_id(0)
        b = tl.program_id(1).to(tl.int64)
        offs_d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < d
        offs_r = tl.arange(0, BLOCK_R)
        offs_n = tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        w_dt = tl.load(dtw_ptr + offs_d[:, None] * RANK + offs_r[None, :],
                       mask=mask_d[:, None] & (offs_r < RANK)[None, :], other=0.0)
        bias = tl.load(dtb_ptr + offs_d, mask=mask_d, other=0.0)
        a2 = tl.load(a2_ptr + offs_d[:, None] * N + offs_n[None, :],
                     mask=mask_d[:, None] & mask_n[None, :], other=0.0)
        h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        dt_sum = tl.zeros((BLOCK_D,), dtype=tl.float32)
        start = ci * chunk
        stop = tl.minimum(start + chunk, length)
        for l in range(start, stop):
            h, u, dt, row, pr = _step(h, l, b, length, height, width, d, x_ptr, proj_ptr, w_dt, bias,
                                      a2, offs_d, mask_d, offs_r, offs_n, mask_n, RANK, N, DIRECTION)
            dt_sum += dt
        at = b * n_chunks + ci
        tl.store(states_ptr + (at * d + offs_d[:, None]) * N + offs_n[None, :], h,
                 mask=mask_d[:, None] & mask_n[None, :])
        tl.store(dtsum_ptr + at * d + offs_d, dt_sum, mask=mask_d)

    @triton.jit
    def _carry_states(states_ptr, dtsum_ptr, a2_ptr, d, n_chunks,
                      N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
        """Pass 2: walk the chunks in order, H_c = exp2(A2 sum dt_c) H_{c-1} + h_end_c, and
        replace each chunk's end state with the state entering it."""
        b = tl.program_id(0).to(tl.int64)
        offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < d
        offs_n = tl.arange(0, BLOCK_N)
        mask = mask_d[:, None] & (offs_n < N)[None, :]
        a2 = tl.load(a2_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask, other=0.0)
        h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        for ci in range(n_chunks):
            at = b * n_chunks + ci
            ptrs = states_ptr + (at * d + offs_d[:, None]) * N + offs_n[None, :]
            h_end = tl.load(ptrs, mask=mask, other=0.0)
            dt_sum = tl.load(dtsum_ptr + at * d + offs_d, mask=mask_d, other=0.0)
            tl.store(ptrs, h, mask=mask)
            h = tl.exp2(dt_sum[:, None] * a2) * h + h_end

    @triton.jit
    def _chunk_outputs(x_ptr, proj_ptr, dtw_ptr, dtb_ptr, a2_ptr, skip_ptr, states_ptr, y_ptr,
                       length, height, width, d, n_chunks, chunk,
                       RANK: tl.constexpr, N: tl.constexpr, BLOCK_D: tl.constexpr,
                       BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, DIRECTION: tl.constexpr,
                       HAS_START: tl.constexpr, ACCUMULATE: tl.constexpr):
        """Pass 3: scan chunk program_id(0) from its start state (zero without HAS_START) and
        add (store, without ACCUMULATE) sum_n C_n h_n + D u into y (B, L, d)."""
        ci = tl.program_id(0)
        b = tl.program_id(1).to(tl.int64)
        offs_d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < d
        offs_r = tl.arange(0, BLOCK_R)
        offs_n = tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        w_dt = tl.load(dtw_ptr + offs_d[:, None] * RANK + offs_r[None, :],
                       mask=mask_d[:, None] & (offs_r < RANK)[None, :], other=0.0)
        bias = tl.load(dtb_ptr + offs_d, mask=mask_d, other=0.0)
        a2 = tl.load(a2_ptr + offs_d[:, None] * N + offs_n[None, :],
                     mask=mask_d[:, None] & mask_n[None, :], other=0.0)
        skip = tl.load(skip_ptr + offs_d, mask=mask_d, other=0.0)
        if HAS_START:
            at = b * n_chunks + ci
            h = tl.load(states_ptr + (at * d + offs_d[:, None]) * N + offs_n[None, :],
                        mask=mask_d[:, None] & mask_n[None, :], other=0.0)
        else:
            h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        start = ci * chunk
        stop = tl.minimum(start + chunk, length)
        for l in range(start, stop):
            h, u, dt, row, pr = _step(h, l, b, length, height, width, d, x_ptr, proj_ptr, w_dt, bias,
                                      a2, offs_d, mask_d, offs_r, offs_n, mask_n, RANK, N, DIRECTION)
            c_out = tl.load(pr + RANK + N + offs_n, mask=mask_n, other=0.0)
            out = tl.sum(h * c_out[None, :], axis=1) + skip * u
            y_ptrs = y_ptr + row * d + offs_d
            if ACCUMULATE:
                out += tl.load(y_ptrs, mask=mask_d, other=0.0)
            tl.store(y_ptrs, out, mask=mask_d)


def _check_shapes(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds) -> tuple[int, int]:
    """(dt rank, N) after checking that the parameters fit x; ValueError if they do not."""
    if x.dim() != 4:
        raise ValueError(f"x must be (B, H, W, d) channels-last, got shape {tuple(x.shape)}")
    d = x.shape[3]
    if A_logs.dim() != 2 or A_logs.shape[0] != 4 * d:
        raise ValueError(f"A_logs must be (4 * d, N) = (4 * {d}, N), got {tuple(A_logs.shape)}")
    n_state = A_logs.shape[1]
    if dt_projs_weight.dim() != 3 or dt_projs_weight.shape[:2] != (4, d):
        raise ValueError(f"dt_projs_weight must be (4, {d}, R), got {tuple(dt_projs_weight.shape)}")
    rank = dt_projs_weight.shape[2]
    expected = {"x_proj_weight": (x_proj_weight, (4, rank + 2 * n_state, d)),
                "dt_projs_bias": (dt_projs_bias, (4, d)), "Ds": (Ds, (4 * d,))}
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must be {shape} for x {tuple(x.shape)}, got {tuple(tensor.shape)}")
    return rank, n_state


def _check_device(device: torch.device) -> None:
    if triton is None:
        raise BackendError("the 'triton' backend needs triton: pip install triton (on a machine with a "
                           "CUDA GPU), or use --backend auto")
    if device.type == "cuda" or (device.type == "cpu" and interpreter_enabled()):
        return
    if device.type == "cpu":
        raise BackendError("the 'triton' backend runs on CUDA GPUs; on the CPU only with TRITON_INTERPRET=1 "
                           "(slow, for tests); use --backend auto")
    raise BackendError(f"the 'triton' backend runs on CUDA GPUs, not on {device.type!r} tensors; "
                       "use --backend auto")


@torch.no_grad()
def ss2d_scan_triton(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, *,
                     chunk: int | None = None, block_channels: int | None = None) -> torch.Tensor:
    """SS2D's four scan directions summed, for inference (no gradients).

    x: (B, H, W, d) float32 channels-last (after SS2D's depthwise conv + SiLU). Parameters as
    named in SS2D: x_proj_weight (4, R + 2N, d), dt_projs_weight (4, d, R), dt_projs_bias (4, d),
    A_logs (4 d, N), Ds (4 d). Returns y (B, H, W, d) float32 on x's device: the sum over the
    four directions of the selective scan output with its D * u term, in pixel order (what
    SS2D.forward has in ``y`` before out_norm). ``chunk`` (steps per chunk) and
    ``block_channels`` (channels per program, a power of two) override the heuristics
    ``chunk_length`` and ``channel_block``. CUDA tensors, or CPU tensors under TRITON_INTERPRET=1;
    anything else raises BackendError.
    """
    _check_device(x.device)
    rank, n_state = _check_shapes(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    device = x.device
    batch, height, width, d = x.shape
    length = height * width

    def f32(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(device=device, dtype=torch.float32).contiguous()

    x = f32(x)
    x_proj, dt_w, dt_b, skip = f32(x_proj_weight), f32(dt_projs_weight), f32(dt_projs_bias), f32(Ds).view(4, d)
    a2 = (-torch.exp(f32(A_logs)) * _LOG2E).view(4, d, n_state)
    block_d = block_channels or channel_block(d)
    if block_d < 1 or block_d & (block_d - 1):
        raise ValueError(f"block_channels must be a power of two, got {block_d}")
    block_n, block_r = _next_pow2(n_state), _next_pow2(rank)
    d_blocks = math.ceil(d / block_d)
    chunk = chunk or chunk_length(length, batch * d_blocks, device)
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    n_chunks = math.ceil(length / chunk)
    warps = num_warps(block_d, block_n)

    y = torch.empty_like(x)
    if batch == 0 or length == 0 or d == 0:
        return y.zero_()
    x2 = x.view(batch * length, d)
    proj = torch.empty(batch * length, rank + 2 * n_state, device=device, dtype=torch.float32)
    if n_chunks > 1:
        states = torch.empty(batch, n_chunks, d, n_state, device=device, dtype=torch.float32)
        dt_sums = torch.empty(batch, n_chunks, d, device=device, dtype=torch.float32)
    else:
        states = dt_sums = proj  # unused: a single chunk starts from zero
    sizes = dict(RANK=rank, N=n_state, BLOCK_D=block_d, BLOCK_R=block_r, BLOCK_N=block_n)
    grid = (n_chunks, batch, d_blocks)
    context = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with context:
        for k in range(4):
            torch.mm(x2, x_proj[k].t(), out=proj)  # (B*L, R + 2N): dt_low, B, C per pixel
            if n_chunks > 1:
                _chunk_end_states[grid](x, proj, dt_w[k], dt_b[k], a2[k], states, dt_sums,
                                        length, height, width, d, n_chunks, chunk,
                                        DIRECTION=k, num_warps=warps, **sizes)
                _carry_states[(batch, d_blocks)](states, dt_sums, a2[k], d, n_chunks, N=n_state,
                                                 BLOCK_D=block_d, BLOCK_N=block_n, num_warps=warps)
            _chunk_outputs[grid](x, proj, dt_w[k], dt_b[k], a2[k], skip[k], states, y,
                                 length, height, width, d, n_chunks, chunk,
                                 DIRECTION=k, HAS_START=n_chunks > 1, ACCUMULATE=k > 0,
                                 num_warps=warps, **sizes)
    return y

