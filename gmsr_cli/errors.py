"""The library's errors: one base class, one subclass per kind of failure.

Every message says what failed, where (file, key, option) and what to do about it; the CLI
prints it as one line and exits with code 1.
"""


class GmsrError(Exception):
    """Base of every error the library raises on purpose."""


class WeightsError(GmsrError):
    """A weights file is missing, malformed, truncated or does not fit the network."""


class BackendError(GmsrError):
    """A selective-scan backend or device was asked for that cannot run here."""


class DeviceError(GmsrError):
    """The device cannot finish the work (out of memory, a failing GPU): it would fail every
    following photo the same way, so a batch stops on it instead of going on."""


class FormatError(GmsrError):
    """A file format is unknown, or a file is not what its format says."""


class InputImageError(GmsrError):
    """An input photo cannot be read or converted to RGB."""


class OutputExistsError(GmsrError):
    """An output file exists and --overwrite was not given."""


class CubeError(GmsrError):
    """A hyperspectral cube file cannot be read or has no usable wavelengths."""


class DataError(GmsrError):
    """Training or evaluation data is missing or inconsistent."""


class OutputError(GmsrError):
    """An output cannot be written: a read-only folder, no permission, an I/O error, a file
    larger than the file system or `ulimit -f` allows."""


class DiskFullError(OutputError):
    """No space left (or the disk quota reached) where an output goes: it would fail every
    following output the same way, so a batch stops on it."""


def explain(exc: BaseException) -> str | None:
    """A one-line message for foreseeable failures that arrive as Python's own exceptions (out
    of memory, a file-system error from a library), worded as what happened rather than as a
    bug; None for anything else."""
    import errno

    if isinstance(exc, MemoryError):
        return ("out of memory: this machine cannot hold the work at this size; use smaller tiles "
                "(--tile 256 --batch-tiles 1) or a smaller photo")
    if isinstance(exc, OSError) and exc.errno:
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{where}no space left on the disk; free some space or write elsewhere"
        if exc.errno == errno.EROFS:
            return f"{where}read-only file system; write elsewhere"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"{where}permission denied"
        return f"{where}{exc.strerror or exc}"
    return None
