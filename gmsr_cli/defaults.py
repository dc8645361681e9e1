"""Default values the CLI shows in its help, importable without torch (so `--help` stays fast)."""

DEFAULT_WEIGHTS = "gmsr-cave-srgb"
# Chosen by benchmarks/choose_tile.py on the CAVE validation scenes; see docs/tiling.md.
DEFAULT_TILE_PX = 256
DEFAULT_OVERLAP_PX = 32
