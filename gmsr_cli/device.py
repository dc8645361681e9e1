"""Turning --device into a torch.device, with errors that say what to do."""

from __future__ import annotations

import torch

from .errors import BackendError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if isinstance(name, torch.device):
        name = str(name)
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BackendError(f"--device {name}: this PyTorch sees no CUDA GPU "
                               f"(torch {torch.__version__}); use --device cpu or install a CUDA build of PyTorch")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise BackendError(f"--device {name}: not a device name; use auto, cpu, cuda or cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BackendError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here "
                               f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return device
    raise BackendError(f"--device {name}: not a device name; use auto, cpu, cuda or cuda:N")
