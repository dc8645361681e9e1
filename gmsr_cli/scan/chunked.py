"""Selective scan in plain PyTorch, vectorised over chunks: differentiable on any device.

Used where no compiled backend is available (CUDA without mamba-ssm, or CPU without numba).
The sequence is cut into chunks of ``chunk`` steps; one Python loop walks the steps of all
chunks at once, a second carries the state from chunk to chunk, and a correction adds each
chunk's incoming state. Every factor is a product of decays <= 1, so strong decay underflows
to 0 instead of overflowing. Memory is O(batch * channels * L * N), so inputs are processed in
blocks of channels when gradients are not needed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .reference import effective_delta


def _scan_block(u, delta, A, B, C, chunk):
    # u, delta: (b, d, L); A: (d, N); B, C: (b, d, N, L) already expanded to channels.
    batch, channels, length = u.shape
    n_state = A.shape[1]
    n_chunks = math.ceil(length / chunk)
    pad = n_chunks * chunk - length
    if pad:
        # delta = 0 means decay 1 and no input: padding after the end changes nothing before it.
        u, delta = F.pad(u, (0, pad)), F.pad(delta, (0, pad))
        B, C = F.pad(B, (0, pad)), F.pad(C, (0, pad))
    shape = (batch, channels, n_chunks, chunk)
    log_decay = delta.view(shape).unsqueeze(-1) * A[None, :, None, None, :]  # (b, d, c, t, N)
    drive = (delta * u).view(shape).unsqueeze(-1) * B.view(batch, channels, n_state, n_chunks, chunk).permute(0, 1, 3, 4, 2)
    Cc = C.view(batch, channels, n_state, n_chunks, chunk).permute(0, 1, 3, 4, 2)  # (b, d, c, t, N)
    decay = torch.exp(log_decay)
    # Within each chunk, starting from zero.
    h = torch.zeros_like(drive[:, :, :, 0])
    local = []
    for t in range(chunk):
        h = decay[:, :, :, t] * h + drive[:, :, :, t]
        local.append(h)
    local = torch.stack(local, dim=3)  # (b, d, c, t, N)
    cum_decay = torch.exp(torch.cumsum(log_decay, dim=3))  # decay from chunk start to step t
    # Carry the state across chunks.
    carry = torch.zeros_like(h[:, :, 0])
    carries = []
    for c in range(n_chunks):
        carries.append(carry)
        carry = cum_decay[:, :, c, -1] * carry + local[:, :, c, -1]
    carries = torch.stack(carries, dim=2)  # (b, d, c, N): state before each chunk
    states = local + cum_decay * carries.unsqueeze(3)
    y = (states * Cc).sum(-1).reshape(batch, channels, n_chunks * chunk)
    return y[..., :length]


def selective_scan_chunked(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, chunk=64,
                           max_block_elements=2**27):
    """Same contract as ``selective_scan_reference``; differentiable through autograd."""
    u = u.float()
    delta = effective_delta(delta, delta_bias, delta_softplus)
    batch, channels, length = u.shape
    groups = B.shape[1]
    per_group = channels // groups
    A = A.float()
    chunk = max(1, min(chunk, length))
    if torch.is_grad_enabled() and (u.requires_grad or delta.requires_grad or A.requires_grad
                                    or B.requires_grad or C.requires_grad):
        block = channels
    else:
        block = max(1, min(channels, max_block_elements // max(1, batch * length * A.shape[1])))
    ys = []
    for start in range(0, channels, block):
        stop = min(channels, start + block)
        idx = torch.arange(start, stop, device=u.device) // per_group
        ys.append(_scan_block(u[:, start:stop], delta[:, start:stop], A[start:stop],
                              B.float()[:, idx], C.float()[:, idx], chunk))
    y = torch.cat(ys, dim=1) if len(ys) > 1 else ys[0]
    if D is not None:
        y = y + u * D.float()[None, :, None]
    return y
