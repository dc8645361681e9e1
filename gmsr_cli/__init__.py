"""gmsr-cli: RGB photos to 31-band hyperspectral cubes with GMSR-Net."""

__version__ = "0.1.0"
