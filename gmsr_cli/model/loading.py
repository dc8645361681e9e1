"""Loading GMSR-Net for inference: weights found and checked, the scan backend bound for the device, once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .weights import DEFAULT_WEIGHTS, WeightsInfo

PathLike = str | os.PathLike


@dataclass
class LoadedModel:
    """GMSR-Net ready for inference: the module (eval mode, on ``device``), its weights' info."""

    module: Any
    weights: WeightsInfo | None
    device: Any

    @property
    def camera(self) -> str:
        """The camera model the weights expect photos from."""
        return self.weights.camera if self.weights is not None else "srgb"

    @property
    def backend(self) -> str:
        """The scan backend the model runs (resolved from ``auto`` for its device)."""
        return self.module.backend


def load_model(weights: PathLike | None = DEFAULT_WEIGHTS, device: str = "auto", backend: str = "auto") -> LoadedModel:
    """GMSR-Net with ``weights`` (a shipped name or a file; None: random initialisation, for tests)
    built on ``device`` (auto, cpu, cuda[:N]) with the scan ``backend`` (or auto) resolved and bound
    for that device, in eval mode. Raises WeightsError / BackendError with what to do."""
    from ..device import resolve_device
    from .gmsr import GMSRNet
    from .weights import load_weights

    dev = resolve_device(device)
    module = GMSRNet(backend=backend, device=dev)
    info = load_weights(module, weights) if weights is not None else None
    return LoadedModel(module=module.eval(), weights=info, device=dev)
