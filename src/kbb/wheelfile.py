"""Byte-reproducible wheels: a wheel rewritten with its entries sorted (the
.dist-info folder last, RECORD at its end), one fixed date, and normalized
permissions, so that the same commit gives the same bytes on every build,
whatever the build backend did with dates and order."""

import os
import time
import zipfile

# The earliest date a zip file can hold.
_ZIP_EPOCH = 315532800  # 1980-01-01


def _order(name):
    info = name.split("/", 1)[0].endswith(".dist-info")
    return info, name.endswith("/RECORD"), name


def normalize(path, epoch):
    """Rewrites the wheel at `path` deterministically, dated `epoch`."""
    date = time.gmtime(max(int(epoch), _ZIP_EPOCH))[:6]
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    partial = f"{path}.part"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in sorted(entries, key=lambda e: _order(e[0].filename)):
            if info.is_dir():
                continue
            fixed = zipfile.ZipInfo(info.filename, date_time=date)
            executable = (info.external_attr >> 16) & 0o111
            fixed.external_attr = (0o100755 if executable else 0o100644) << 16
            fixed.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(fixed, data)
    os.replace(partial, path)
