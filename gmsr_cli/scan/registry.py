"""The selective-scan backends as one table: where each runs, what it needs, how to get it, what ``auto`` prefers.

Everything about choosing a backend is made from ``BACKENDS``: ``resolve_backend``,
``available_backends``, the CLI's ``--backend`` choice and its help, ``gmsr info --system``.
Importing this module imports neither torch nor any backend; a backend's module is imported
when it is bound (``bind_ss2d``) or its scan is asked for (``load_scan``).

A backend implements up to three operations, each named as ``"module:function"``:
  scan            the 1-D Mamba-1 selective scan of the common signature
                  (``reference.selective_scan_reference``); SS2D's per-direction path uses it;
  ss2d_inference  SS2D's whole forward without gradients, ``fn(ss2d, x (B, H, W, c)) -> (B, H, W, c)``;
  ss2d_training   the same, differentiable.
An op's module may define ``supports(ss2d) -> bool`` for the layers it can compute. SS2D binds its
operations once, at construction (``bind_ss2d``); where a backend lacks one, the per-direction path
runs with the scan of the backend ``auto`` would take among those that have a scan.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from ..errors import BackendError


@dataclass(frozen=True)
class Backend:
    """One row of the table."""

    name: str
    summary: str
    devices: tuple[str, ...]  # device types it can run on
    auto_devices: tuple[str, ...]  # device types where ``auto`` may choose it (in table order)
    needs: tuple[str, ...]  # modules that must be importable
    install: str  # how to get what it needs
    scan: str | None = None
    ss2d_inference: str | None = None
    ss2d_training: str | None = None
    # "module:function" -> reason it cannot run on a device type (None: it can), beyond ``needs``.
    probe: str | None = None


# Order is ``auto``'s preference: the first row that runs on the device wins.
BACKENDS: tuple[Backend, ...] = (
    Backend("triton", "fused SS2D scan kernels in Triton, forward and backward; CUDA, or the CPU with TRITON_INTERPRET=1 (tests)",
            devices=("cuda", "cpu"), auto_devices=("cuda",), needs=("triton",),
            install="pip install triton (CUDA builds of PyTorch on Linux already include it)",
            ss2d_inference="gmsr_cli.scan.triton_ss2d:ss2d_forward_triton",
            ss2d_training="gmsr_cli.scan.triton_ss2d:ss2d_forward_triton",
            probe="gmsr_cli.scan.registry:triton_unavailable_reason"),
    Backend("mamba", "mamba-ssm's CUDA selective-scan kernel (the published configuration)",
            devices=("cuda",), auto_devices=("cuda",), needs=("mamba_ssm",),
            install='pip install "gmsr-cli[mamba]" on a machine with CUDA PyTorch and a CUDA compiler',
            scan="gmsr_cli.scan.mamba:selective_scan_mamba", probe="gmsr_cli.scan.mamba:unavailable_reason"),
    Backend("numba", "compiled CPU kernels with an exact backward pass; the fast CPU choice, also for training",
            devices=("cpu",), auto_devices=("cpu",), needs=("numba",), install="pip install numba",
            scan="gmsr_cli.scan.numba_scan:selective_scan_numba",
            ss2d_inference="gmsr_cli.scan.numba_ss2d_infer:ss2d_forward_numba",
            ss2d_training="gmsr_cli.scan.numba_ss2d_train:ss2d_forward_train_numba"),
    Backend("chunked", "vectorised PyTorch, differentiable by autograd; any device",
            devices=("cpu", "cuda"), auto_devices=("cpu", "cuda"), needs=(), install="(nothing: plain PyTorch)",
            scan="gmsr_cli.scan.chunked:selective_scan_chunked"),
    Backend("reference", "plain sequential loop; the test oracle; slow",
            devices=("cpu", "cuda"), auto_devices=(), needs=(), install="(nothing: plain PyTorch)",
            scan="gmsr_cli.scan.reference:selective_scan_reference"),
)

BACKEND_NAMES: tuple[str, ...] = ("auto",) + tuple(b.name for b in BACKENDS)
_BY_NAME = {b.name: b for b in BACKENDS}
_import_failures: dict[str, str | None] = {}


def device_type(device: Any = None) -> str:
    """``cpu``/``cuda`` from a torch.device, a string such as ``cuda:1``, or None (the CPU)."""
    if device is None:
        return "cpu"
    kind = getattr(device, "type", None)
    return kind if isinstance(kind, str) else str(device).split(":")[0].strip().lower()


def get_backend(name: str) -> Backend:
    """The table row of a concrete backend name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise BackendError(f"unknown scan backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}") from None


def _import_failure(module: str) -> str | None:
    # find_spec only: importing a heavy optional package (mamba_ssm, triton) just to list it is slow.
    if module not in _import_failures:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        _import_failures[module] = None if found else f"{module} is not installed"
    # (the caller adds the row's install advice)
    return _import_failures[module]


def _load(spec: str) -> Callable:
    module, function = spec.split(":")
    return getattr(importlib.import_module(module), function)


def unavailable_reason(backend: Backend | str, device: Any = None) -> str | None:
    """Why ``backend`` cannot run on ``device`` here (None when it can)."""
    row = get_backend(backend) if isinstance(backend, str) else backend
    kind = device_type(device)
    if kind not in row.devices:
        return f"runs only on {' or '.join(row.devices)}"
    for module in row.needs:
        reason = _import_failure(module)
        if reason:
            return f"{reason} ({row.install})"
    if row.probe:
        return _load(row.probe)(kind)
    return None


def available_backends(device: Any = None) -> list[str]:
    """Concrete backends that can run on ``device`` here, in ``auto``'s order of preference."""
    return [row.name for row in BACKENDS if unavailable_reason(row, device) is None]


def resolve_backend(name: str, device: Any = None) -> str:
    """Turn ``name`` (possibly ``auto``) into a concrete backend that runs on ``device``; a backend
    that cannot run is a BackendError saying why and how to get it (never a silent fallback)."""
    kind = device_type(device)
    if name == "auto":
        for row in BACKENDS:
            if kind in row.auto_devices and unavailable_reason(row, kind) is None:
                return row.name
        raise BackendError(f"no scan backend runs on {kind} here")
    row = get_backend(name)
    reason = unavailable_reason(row, kind)
    if reason is None:
        return row.name
    if kind not in row.devices:
        where = " or ".join("a CUDA GPU (--device cuda)" if d == "cuda" else "the CPU (--device cpu)" for d in row.devices)
        raise BackendError(f"the {row.name!r} backend runs only on {where}, not on {kind}; use --backend auto")
    raise BackendError(f"the {row.name!r} backend cannot run here: {reason}; or use --backend auto")


def backend_help() -> str:
    """The --backend help text: every choice with what it is."""
    rows = "; ".join(f"{row.name}: {row.summary}" for row in BACKENDS)
    return ("Selective-scan implementation. auto: the fastest that runs on the device "
            f"(CPU: numba; CUDA: triton, else mamba, else chunked). {rows}.")


def load_scan(name: str) -> Callable:
    """The 1-D scan function of a concrete backend (see ``reference.selective_scan_reference``)."""
    row = get_backend(name)
    if row.scan is None:
        raise BackendError(f"the {row.name!r} backend computes SS2D's four-direction scan only, not a 1-D "
                           "selective scan; use another --backend for selective_scan")
    return _load(row.scan)


class SS2DOps(NamedTuple):
    """What an SS2D layer runs: the 1-D scan of its per-direction path, and the fused whole-layer
    operations where its backend has them for this layer (None where not)."""

    backend: str
    scan: Callable
    inference: Callable | None
    training: Callable | None


def _bind_op(spec: str | None, ss2d) -> Callable | None:
    if spec is None:
        return None
    module, function = spec.split(":")
    mod = importlib.import_module(module)
    supports = getattr(mod, "supports", None)
    return getattr(mod, function) if supports is None or supports(ss2d) else None


def bind_ss2d(name: str, device: Any, ss2d) -> SS2DOps:
    """The operations an SS2D layer ``ss2d`` runs with backend ``name`` (possibly ``auto``) on ``device``."""
    kind = device_type(device)
    row = get_backend(resolve_backend(name, kind))
    scan_backend = row.name
    if row.scan is None:  # e.g. triton: its per-direction path (float64, ...) takes auto's 1-D scan
        scan_backend = next(r.name for r in BACKENDS
                            if r.scan and kind in r.auto_devices and unavailable_reason(r, kind) is None)
    return SS2DOps(row.name, load_scan(scan_backend), _bind_op(row.ss2d_inference, ss2d),
                   _bind_op(row.ss2d_training, ss2d))


def triton_interpreter_on() -> bool:
    """Whether Triton kernels run on CPU tensors: TRITON_INTERPRET=1, which Triton reads when a
    kernel is defined, so what counts once gmsr_cli.scan.triton_ss2d is imported is its setting then."""
    import sys

    kernels = sys.modules.get("gmsr_cli.scan.triton_ss2d")
    if kernels is not None:
        return kernels.interpreter_enabled()
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_unavailable_reason(device_type: str) -> str | None:
    """The triton backend runs on CUDA; on the CPU only through Triton's interpreter (slow: for tests)."""
    if device_type == "cpu" and not triton_interpreter_on():
        return ("on the CPU Triton kernels run only in its interpreter, with TRITON_INTERPRET=1 set "
                "before gmsr starts (slow: meant for tests); the fast CPU backend is numba")
    return None
