"""gmsr-cli: RGB photos to 31-band hyperspectral cubes with GMSR-Net."""

import os as _os

__version__ = "0.1.0"

# PyTorch and numba each keep an OpenMP thread pool. With OpenMP's default active wait, the idle
# threads of one spin on the cores the other needs: a CPU training step ran 2.5x slower
# (224 -> 89 us per pixel, docs/performance.md). This must be set before torch is first imported
# to take effect; a value the user set is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# numpy's OpenBLAS keeps its own threads, which spin for about 2^28 cycles after each product
# before they sleep; between the CPU engine's products run numba's threads, which they then slow
# down: a 512 x 512 pass without torch took 1.43-1.50 s instead of 0.90-0.97 s
# (benchmarks/bench_e2e_parts.py engine). 2^4 cycles: they sleep at once. Read when numpy is
# first imported; a value the user set is kept.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
