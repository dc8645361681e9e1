"""File I/O: photos in, hyperspectral cubes in and out (HDF5, ENVI, MAT, TIFF, NPY), written atomically."""

from gmsr_cli.io.cube import Cube
from gmsr_cli.io.images import RgbImage, image_size, read_rgb, write_rgb
from gmsr_cli.io.registry import FORMAT_NAMES, format_for, open_cube_writer, read_cube, write_cube

__all__ = [
    "Cube",
    "RgbImage",
    "read_rgb",
    "write_rgb",
    "image_size",
    "read_cube",
    "write_cube",
    "open_cube_writer",
    "format_for",
    "FORMAT_NAMES",
]
