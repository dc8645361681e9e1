"""gmsr-cli: RGB photos to 31-band hyperspectral cubes with GMSR-Net."""

import os as _os

__version__ = "0.1.0"

# PyTorch and numba each keep an OpenMP thread pool. With OpenMP's default active wait, the idle
# threads of one spin on the cores the other needs: a CPU training step ran 2.5x slower
# (224 -> 89 us per pixel, docs/performance.md). This must be set before torch is first imported
# to take effect; a value the user set is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
