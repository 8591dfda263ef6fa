"""One kbb at a time per workspace: the lock that every `kbb` command
that changes something takes (kbb.cli). Its file says who holds it; a
waiter says so every few seconds."""

import contextlib
import fcntl
import os
import time

from kbb import KbbError
from kbb import log

# Seconds between a waiter's notes.
NOTE_EVERY = 5.0
# Lock files this process holds: it takes them again freely.
_held = set()


@contextlib.contextmanager
def locked(ws, command):
    """Holds the workspace lock while running `command` (its name, for a
    waiter's note); says which workspace it acts on."""
    path = ws.lock_file
    if path in _held:
        yield
        return
    try:
        ws.upstream_dir.mkdir(parents=True, exist_ok=True)
        lock = open(path, "a+")
    except OSError as e:
        raise KbbError(
            f"cannot take the lock {path}: {e.strerror}; {command} changes the "
            f"workspace {ws.root}: run it in a writable clone"
        ) from None
    with lock:
        _wait(lock, path)
        lock.truncate(0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        lock.write(f"pid {os.getpid()} ({command}) since {stamp}\n")
        lock.flush()
        log(f"workspace {ws.root}")
        _held.add(path)
        try:
            yield
        finally:
            _held.discard(path)


def _wait(lock, path):
    """Takes the lock, saying every NOTE_EVERY seconds who holds it."""
    noted = None
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if noted is None or time.monotonic() - noted >= NOTE_EVERY:
            holder = path.read_text().strip() or "another kbb"
            log(f"waiting for the workspace lock {path}, held by {holder}")
            noted = time.monotonic()
        time.sleep(0.1)
