"""Atomic outputs: files written under temporary names beside their targets, renamed into place when complete.

A temporary's name carries the host and process id of its writer
(``.NAME.HOST-PID-TOKEN.partial.EXT``), so that a later run writing to the same folder can
remove the temporaries of processes that were killed (SIGKILL, a power cut) and will never
finish them, while leaving alone those of runs still going (here or on another machine
sharing the folder). Failures of the file system (no space left, read-only, I/O errors) become
one-line OutputError / DiskFullError messages naming the path and the cause.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gmsr_cli import interrupts
from gmsr_cli.errors import DiskFullError, GmsrError, OutputError, OutputExistsError

_TEMP_NAME = re.compile(
    r"^\.(?P<stem>.*)\.(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)-(?P<token>[0-9a-f]{12})"
    r"(?:\.scratch\d+)?\.partial(?:\.[^.]*)?$"
)
_cleaned_folders: set[Path] = set()


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep its files
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` left by writers on this host whose process no longer
    exists (killed before they could clean up). Returns the files removed; never raises."""
    folder = Path(folder)
    removed: list[Path] = []
    host = _host()
    try:
        names = [n for n in os.listdir(folder) if n.startswith(".") and ".partial" in n]
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if match is None or match.group("host") != host or _process_alive(int(match.group("pid"))):
            continue
        try:
            (folder / name).unlink()
            removed.append(folder / name)
        except OSError:
            pass
    return removed


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
        # The host and process id let a later run tell a killed writer's leftovers from a live one's.
        tag = f"{_host()}-{os.getpid()}-{self._token}"
        return final.with_name(f".{final.stem}.{tag}{extra}.partial{final.suffix}")

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
            except OSError:
                pass  # gone already, or a folder that went read-only: nothing more to do


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


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def _mount_point(folder: Path) -> Path:
    try:
        path = folder.resolve()
    except OSError:
        return folder
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes free for an unprivileged writer in ``folder``'s file system, or None if unknown."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def check_free_space(final: Path, needed_bytes: int, exact: bool = True) -> None:
    """Raise DiskFullError if ``final``'s folder has less than ``needed_bytes`` free: refusing
    at once beats failing after minutes of work. ``exact`` False: the size is a lower bound."""
    free = free_bytes(final.parent)
    if free is not None and free < needed_bytes:
        raise DiskFullError(
            f"not enough space on {_mount_point(final.parent)} for {final.name}: it needs "
            f"{'about' if exact else 'at least'} "
            f"{_size(needed_bytes)} and {_size(free)} are free; free some space or write elsewhere"
        )


_FULL = {errno.ENOSPC, errno.EDQUOT}


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError with an errno behind ``exc`` (itself, or what it was raised from or during)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno:
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def output_error(exc: BaseException, final: Path, size_bytes: int | None = None,
                 free_at_start: int | None = None, size_exact: bool = True) -> OutputError | None:
    """The one-line OutputError for a failure of the file system while writing ``final``, or
    None when ``exc`` is not one (a bug, an interrupt: those keep their own type). ``size_bytes``:
    the output's size (``size_exact`` False: its most, for compressed formats)."""
    os_error = _os_error_in(exc)
    if os_error is None or isinstance(exc, KeyboardInterrupt):
        return None
    code, folder = os_error.errno, final.parent
    if code in _FULL:
        what = "no space left" if code == errno.ENOSPC else "disk quota exceeded"
        detail = ""
        if size_bytes and free_at_start is not None:
            more = size_bytes - free_at_start
            about = "about" if size_exact else "up to"
            detail = (f" (needs {about} {_size(more)} more)" if more > 0 else
                      f" (it takes {about} {_size(size_bytes)}; {_size(free_at_start)} were free when it began)")
        return DiskFullError(f"{what} on {_mount_point(folder)} while writing {final.name}{detail}; "
                             "free some space or write elsewhere")
    if code == errno.EFBIG:
        return OutputError(f"{final}: file too large for the file system or the file size limit "
                           "(ulimit -f); write elsewhere or as a smaller float16 cube (--dtype float16)")
    if code == errno.EROFS:
        return OutputError(f"cannot write {final}: {folder} is on a read-only file system; choose another output")
    if code in (errno.EACCES, errno.EPERM):
        return OutputError(f"cannot write {final}: no permission to write in {folder}; choose another output")
    if code == errno.EIO:
        return OutputError(f"input/output error while writing {final} (a failing disk or a lost network "
                           "share?); nothing was written")
    return OutputError(f"cannot write {final}: {os_error.strerror or os_error}")


@contextmanager
def atomic_output(final_paths: Path | str | Sequence[Path | str], *, overwrite: bool = False,
                  needed_bytes: int | None = None, size_bytes: int | None = None,
                  size_exact: bool = True) -> Iterator[AtomicFiles]:
    """Write one output (one or several files) atomically.

    Yields an AtomicFiles whose `paths` the caller writes. When the block ends normally every
    temporary file is renamed (os.replace) to its final name, in the order given (give the
    file that marks a complete output, e.g. an ENVI header, last). When it raises anything,
    KeyboardInterrupt included, the temporary files are removed and existing files under the
    final names are untouched. Raises OutputExistsError when a final path exists and
    `overwrite` is False; DiskFullError at once when `needed_bytes` (the least the output can
    take) exceed the free space (`size_bytes`: its size, or its most when not `size_exact`, for
    messages). A failure of the file system while writing (no space, read-only, I/O error)
    becomes an OutputError (DiskFullError for no space) naming the path and the cause. Stale
    temporaries of killed writers in the output folder are removed first (once per process).
    """
    if isinstance(final_paths, (str, os.PathLike)):
        final_paths = [final_paths]
    finals = [Path(p) for p in final_paths]
    check_output_paths(finals, overwrite)
    folder = finals[0].parent
    key = folder.resolve()
    if key not in _cleaned_folders:  # once per folder and process: a batch writes many outputs
        _cleaned_folders.add(key)
        remove_stale_temporaries(folder)
    free_at_start = free_bytes(folder)
    if needed_bytes:
        check_free_space(finals[0], needed_bytes, size_exact)
    files = AtomicFiles(finals, secrets.token_hex(6))
    try:
        yield files
        # Someone may have created the output meanwhile; do not clobber it without permission.
        check_output_paths(finals, overwrite)
        for tmp in files.paths:
            if not tmp.exists():
                raise GmsrError(f"internal error: {tmp} was not written")
        # A Ctrl-C swallowed on the way (raised inside a finalizer) still stops the run here,
        # before an existing output is replaced.
        interrupts.check()
        for tmp, final in zip(files.paths, finals):
            os.replace(tmp, final)
    except BaseException as exc:
        files.remove_temporaries(include_outputs=True)
        error = output_error(exc, finals[0], size_bytes or needed_bytes, free_at_start, size_exact)
        if error is not None:
            raise error from None
        raise
    files.remove_temporaries(include_outputs=False)
