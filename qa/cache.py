"""Answers remembered per index generation, so that a question many people ask at once is read once.

News readers ask the same questions about the same stories at the same time; each answer costs
a retrieval and a reader pass of ~100 ms of CPU, and the app's throughput is bounded by the
cores. ``AnswerCache`` keys an answer by everything that determines it, including the index
generation (``DocumentStore.version``), so that any add or delete, by this process or another,
makes every older entry unreachable: a cached answer is always the answer the index gives now.
Requests for a key that is being computed wait for that computation instead of repeating it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")

CACHE_ANSWERS = 1024  # ~1 MB of answers; older generations' entries age out first


class AnswerCache(Generic[T]):
    """A thread-safe LRU of computed values that coalesces concurrent computations of one key."""

    def __init__(self, size: int = CACHE_ANSWERS) -> None:
        self.size = size
        self._done: OrderedDict[Hashable, T] = OrderedDict()
        self._pending: dict[Hashable, Future[T]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value for ``key``: remembered, awaited from a caller computing it, or computed.
        A failure is raised to every caller waiting for it and is not remembered."""
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                self.hits += 1
                return self._done[key]
            future = self._pending.get(key)
            owner = future is None
            if owner:
                future = self._pending[key] = Future()
                self.misses += 1
            else:
                self.hits += 1
        if not owner:
            return future.result()
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            future.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            self._done[key] = value
            while len(self._done) > self.size:
                self._done.popitem(last=False)
        future.set_result(value)
        return value
