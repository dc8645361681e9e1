"""Atomic outputs: files written under temporary names beside their targets, renamed into place when complete."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gmsr_cli.errors import GmsrError, OutputExistsError


class AtomicFiles:
    """The temporary paths of one atomic output, in the same order as its final paths.

    `scratch(suffix)` hands out further temporary paths in the same folder (e.g. a row buffer)
    that are removed when the output is finished or abandoned.
    """

    def __init__(self, final_paths: Sequence[Path], token: str):
        self.final_paths = tuple(final_paths)
        self._token = token
        self.paths = tuple(self._temp_name(p) for p in self.final_paths)
        self._scratch: list[Path] = []

    def _temp_name(self, final: Path, extra: str = "") -> Path:
        # Same folder (os.replace must not cross file systems), hidden, and ending in the final
        # suffix: libraries that look at the extension (Pillow, scipy) and formats whose files must
        # share a base name (ENVI .hdr + .img) keep working.
        return final.with_name(f".{final.stem}.{self._token}{extra}.partial{final.suffix}")

    @property
    def path(self) -> Path:
        """The (first) temporary path."""
        return self.paths[0]

    def scratch(self, suffix: str) -> Path:
        """A further temporary path beside the output, removed at the end in every case."""
        path = self._temp_name(self.final_paths[0], f".scratch{len(self._scratch)}").with_suffix(suffix)
        self._scratch.append(path)
        return path

    def remove_temporaries(self, include_outputs: bool) -> None:
        paths = list(self._scratch) + (list(self.paths) if include_outputs else [])
        for p in paths:
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def check_output_paths(final_paths: Sequence[Path], overwrite: bool) -> None:
    """Raise if an output cannot be written: an existing file without overwrite, a directory in
    the way, or a missing parent folder."""
    for final in final_paths:
        if final.is_dir():
            raise GmsrError(f"{final} is a folder; give a file name for the output")
        if not final.parent.is_dir():
            raise GmsrError(f"output folder {final.parent} does not exist; create it first")
        if (final.exists() or final.is_symlink()) and not overwrite:
            raise OutputExistsError(f"{final} already exists; pass --overwrite to replace it")


@contextmanager
def atomic_output(final_paths: Path | str | Sequence[Path | str], *, overwrite: bool = False) -> Iterator[AtomicFiles]:
    """Write one output (one or several files) atomically.

    Yields an AtomicFiles whose `paths` the caller writes. When the block ends normally every
    temporary file is renamed (os.replace) to its final name, in the order given (give the
    file that marks a complete output, e.g. an ENVI header, last). When it raises anything,
    KeyboardInterrupt included, the temporary files are removed and existing files under the
    final names are untouched. Raises OutputExistsError when a final path exists and
    `overwrite` is False.
    """
    if isinstance(final_paths, (str, os.PathLike)):
        final_paths = [final_paths]
    finals = [Path(p) for p in final_paths]
    check_output_paths(finals, overwrite)
    files = AtomicFiles(finals, secrets.token_hex(6))
    try:
        yield files
        # Someone may have created the output meanwhile; do not clobber it without permission.
        check_output_paths(finals, overwrite)
        for tmp in files.paths:
            if not tmp.exists():
                raise GmsrError(f"internal error: {tmp} was not written")
        for tmp, final in zip(files.paths, finals):
            os.replace(tmp, final)
    except BaseException:
        files.remove_temporaries(include_outputs=True)
        raise
    files.remove_temporaries(include_outputs=False)
