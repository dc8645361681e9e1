"""Cube file formats, one module each, all with the same interface.

Every format module provides:

- `output_paths(path) -> list[Path]`: the files one output at `path` consists of, in the order
  they are renamed into place (a header that marks a complete output comes last).
- `open_writer(paths, *, height, width, wavelengths_nm, dtype, attrs, scratch, **options)
  -> CubeWriter`: a streaming writer into the (temporary) `paths`; rows arrive with
  `write_rows(y0, block)`, block (h, W, B) float32, top to bottom, each row once; `close()`
  completes the file, `abort()` releases it. `scratch(suffix) -> Path` hands out temporary
  paths that are cleaned up for the writer. Writers never hold the whole cube in memory.
- `read(path) -> Cube`: lazy where the format allows (h5py dataset, or a MappedArray over raw data); raises
  CubeError / FormatError naming the file.

The registry (gmsr_cli.io.registry) maps names and extensions to these modules.
"""
