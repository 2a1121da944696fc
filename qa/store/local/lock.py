"""The single writer of an index directory: an ``flock`` on ``write.lock``, which names the pid
of the process holding it."""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from qa.errors import StoreError
from qa.store.base import LOCK_GRACE_SECONDS
from qa.store.local.database import WRITE_LOCK, read_only_error, refusal


class WriterLock:
    """The index's single-writer lock: an ``flock`` on ``write.lock``, which holds the pid.

    The kernel drops an ``flock`` when its process dies, so a killed writer never leaves the index
    locked. Re-entrant within one process: a long job (``newsqa index``) holds it across many saves.
    """

    def __init__(self, path: Path, read_only: str | None = None) -> None:
        self.path = path / WRITE_LOCK
        self.read_only = read_only  # why this process may not write the index, if it may not
        self._handle: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._depth > 0

    def acquire(self, wait: bool = False) -> bool:
        """Take the lock (True the first time); ``StoreError`` naming the holder unless ``wait``."""
        if self._depth:
            self._depth += 1
            return False
        if self.read_only is not None:
            raise read_only_error(self.path.parent, self.read_only)
        try:
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise refusal(self.path.parent, error) from error
        deadline = time.monotonic() + LOCK_GRACE_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:  # a reader tidying after a crash: milliseconds
                    time.sleep(0.02)
                    continue
                holder = os.pread(handle, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(handle)
                raise StoreError(f"The index at {self.path.parent} is being written by another "
                                 f"process (pid {holder}); try again when it has finished, or "
                                 "wait for it (--wait).") from None
        pid = f"{os.getpid()}\n".encode("ascii")
        os.pwrite(handle, pid, 0)  # then truncate: a reader never sees an empty file
        os.ftruncate(handle, len(pid))
        self._handle, self._depth = handle, 1
        return True

    def release(self) -> None:
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0 and self._handle is not None:
            os.close(self._handle)  # closing drops the flock
            self._handle = None
