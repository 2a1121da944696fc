"""The answer cache: one computation per key however many threads ask, LRU, failures not kept."""
from __future__ import annotations

import threading

import pytest

from qa.cache import AnswerCache


def test_concurrent_callers_of_one_key_share_one_computation():
    cache: AnswerCache[int] = AnswerCache()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        started.set()
        release.wait(10)
        return 42

    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(cache.get("q", compute)))
    first.start()
    assert started.wait(10)
    waiters = [threading.Thread(target=lambda: results.append(cache.get("q", compute)))
               for _ in range(8)]
    for t in waiters:
        t.start()
    release.set()
    for t in [first, *waiters]:
        t.join(10)
    assert results == [42] * 9 and len(calls) == 1
    assert (cache.hits, cache.misses) == (8, 1)


def test_least_recently_used_entries_go_first():
    cache: AnswerCache[str] = AnswerCache(size=2)
    cache.get("a", lambda: "A")
    cache.get("b", lambda: "B")
    cache.get("a", lambda: "not computed again")  # "a" is now the most recent
    cache.get("c", lambda: "C")  # evicts "b"
    assert cache.get("a", lambda: "recomputed") == "A"
    assert cache.get("b", lambda: "recomputed") == "recomputed"


def test_a_failure_reaches_every_waiter_and_is_not_remembered():
    cache: AnswerCache[int] = AnswerCache()
    started, release = threading.Event(), threading.Event()

    def fail() -> int:
        started.set()
        release.wait(10)
        raise ValueError("reader failed")

    errors: list[str] = []

    def ask() -> None:
        try:
            cache.get("q", fail)
        except ValueError as exc:
            errors.append(str(exc))

    first = threading.Thread(target=ask)
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=ask)
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert errors == ["reader failed"] * 2
    assert cache.get("q", lambda: 7) == 7  # computed afresh


def test_unhashable_keys_are_refused_before_any_work():
    with pytest.raises(TypeError):
        AnswerCache().get(["a", "list"], lambda: 1)
