"""Files written whole or not at all: each is written to a temporary name
beside its place (the same file system), then renamed into it; a folder is
made beside the old one and swapped in by one rename."""

import ctypes
import errno
import os
import shutil
from pathlib import Path

from kbb import KbbError

# A full or read-only file system: said in one line, with the mend.
_MENDS = {
    errno.ENOSPC: "free space there (or point TMPDIR elsewhere), then rerun",
    errno.EDQUOT: "free space there (or point TMPDIR elsewhere), then rerun",
    errno.EROFS: "run kbb where it may write",
    errno.EACCES: "run kbb where it may write",
}


def disk_error(error):
    """The one-line KbbError of an OSError of a full or read-only file
    system, or None for any other error."""
    mend = _MENDS.get(error.errno)
    if mend is None:
        return None
    where = f" ({error.filename})" if error.filename else ""
    return KbbError(f"{error.strerror}{where}: {mend}; nothing was half-written")


def write_text(path, text):
    """Writes `text` to `path` whole or not at all; returns `path`."""
    return _replace(path, lambda partial: partial.write_text(text))


def write_bytes(path, data):
    """Writes `data` to `path` whole or not at all; returns `path`."""
    return _replace(path, lambda partial: partial.write_bytes(data))


def copy(source, dest):
    """Copies the file `source` to `dest` (a file path) whole or not at
    all; returns `dest`."""
    return _replace(dest, lambda partial: shutil.copyfile(source, partial))


def _replace(path, write):
    """Has `write` make `path`'s content under a temporary name beside it,
    then renames that into `path`; removes it on any failure."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.part")  # the umask's mode
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def swap(new, old):
    """Puts the folder `new` in the place of the folder `old` in one rename
    (renameat2's RENAME_EXCHANGE, else two renames); `new` then holds the
    old folder, for the caller to remove."""
    exchange = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    at_cwd, rename_exchange = -100, 2
    if exchange is not None and not exchange(
        at_cwd, os.fsencode(new), at_cwd, os.fsencode(old), rename_exchange
    ):
        return
    aside = Path(new).with_name(Path(new).name + ".old")
    os.rename(old, aside)
    os.rename(new, old)
    os.rename(aside, new)
