"""The single writer of a Milvus index: a lease in ``<name>_meta`` (owner, pid, host, expiry),
renewed as it writes, taken over when it expires or when its holder is known to be dead (see
``qa.store.milvus.store``). Best effort, not a lock: Milvus has none."""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Protocol

from qa.errors import StoreError
from qa.store.base import LOCK_GRACE_SECONDS
from qa.store.milvus.client import Milvus, MilvusLocation
from qa.store.milvus.expressions import literal
from qa.store.milvus.schema import PLACEHOLDER

LEASE_SECONDS = 300  # a writer that has not renewed its lease this long is taken to be dead
LEASE_SETTLE_SECONDS = 0.1  # the pause between writing the lease and reading it back


class LeaseHolder(Protocol):
    """What the lease reads of the store that holds it (``MilvusStore``)."""

    location: str  # as messages show it
    _where: MilvusLocation
    _db: Milvus
    _meta: str  # the meta collection's name


class Lease:
    """The single-writer lease in ``<name>_meta`` (see ``qa.store.milvus.store``). Re-entrant:
    a long job holds it across many saves."""

    KEY = "writer"

    def __init__(self, store: LeaseHolder) -> None:
        self._store = store
        self._owner = uuid.uuid4().hex
        self._depth = 0
        self._expires = 0.0

    @property
    def held(self) -> bool:
        return self._depth > 0

    def acquire(self, wait: bool) -> bool:
        """Take the lease (True the first time); ``StoreError`` naming the holder unless
        ``wait``, which polls until it is free."""
        if self._depth:
            self._depth += 1
            return False
        deadline = time.monotonic() + LOCK_GRACE_SECONDS
        while True:
            holder = self._holder()
            if (holder is None or holder["owner"] == self._owner or holder["expired"]
                    or self._dead(holder)):
                self._write()
                time.sleep(LEASE_SETTLE_SECONDS)
                holder = self._holder()
                if holder is not None and holder["owner"] == self._owner:
                    self._depth = 1
                    return True
            if not wait and time.monotonic() >= deadline:
                raise StoreError(
                    f"The index at {self._store.location} is being written by another process "
                    f"(pid {holder['pid'] if holder else 'unknown'} on "
                    f"{holder['host'] if holder else 'unknown'}); try again when it has "
                    "finished, or wait for it (--wait).")
            time.sleep(0.05 if not wait else 0.5)

    def _dead(self, holder: dict) -> bool:
        """Whether the holder of an unexpired lease has died without giving it back (a killed
        writer): then it is taken over now, as the kernel frees a dead process's ``flock`` of
        an index directory. In a milvus-lite file, which one process at a time opens, every
        other process's lease is a dead one's; on a server, only a lease of a process of this
        machine is known to be dead, when no process has its pid."""
        this_machine = holder["host"] == socket.gethostname()
        if self._store._where.lite:
            return not (this_machine and holder["pid"] == os.getpid())
        if not this_machine:
            return False
        try:
            os.kill(holder["pid"], 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return True
        except PermissionError:  # it exists, as another user's
            pass
        return False

    def renew(self) -> None:
        """Extend the lease once half of it has passed (a long add keeps it)."""
        if self._depth and time.time() > self._expires - LEASE_SECONDS / 2:
            self._write()

    def release(self) -> None:
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0:
            holder = self._holder()
            if holder is not None and holder["owner"] == self._owner:
                self._store._db.delete(self._store._meta, filter=f"key == {literal(self.KEY)}")

    def _holder(self) -> dict | None:
        rows = self._store._db.query(self._store._meta, filter=f"key == {literal(self.KEY)}",
                                     output_fields=["value", "text"])
        if not rows:
            return None
        holder = json.loads(rows[0]["text"])
        return {**holder, "expired": rows[0]["value"] / 1000 < time.time()}

    def _write(self) -> None:
        self._expires = time.time() + LEASE_SECONDS
        owner = {"owner": self._owner, "pid": os.getpid(), "host": socket.gethostname()}
        self._store._db.upsert(self._store._meta, [{
            "key": self.KEY, "value": int(self._expires * 1000), "text": json.dumps(owner),
            "placeholder": PLACEHOLDER}])
