"""The per-gap cache: one computation per key under concurrent requests, bounded size, no cached failures."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from vsflavr.gapcache import OnceCache


def test_concurrent_requests_compute_once() -> None:
    cache: OnceCache[int, int] = OnceCache(4)
    calls: list[int] = []
    lock = threading.Lock()

    def compute(key: int) -> int:
        with lock:
            calls.append(key)
        time.sleep(0.05)
        return key * 10

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda k: cache.get(k, lambda: compute(k)), [1, 1, 1, 2, 2, 1, 2, 1]))
    assert results == [10, 10, 10, 20, 20, 10, 20, 10]
    assert sorted(calls) == [1, 2]


def test_capacity_bounds_entries_and_evicts_least_recently_used() -> None:
    cache: OnceCache[int, int] = OnceCache(3)
    for key in range(100):
        cache.get(key, lambda k=key: k)
        assert len(cache) <= 3
    calls = []
    cache.get(99, lambda: calls.append(99) or 0)
    cache.get(0, lambda: calls.append(0) or 0)
    assert calls == [0]


def test_failures_reach_every_waiter_and_are_not_cached() -> None:
    cache: OnceCache[int, int] = OnceCache(2)
    with pytest.raises(RuntimeError, match="boom"):
        cache.get(1, lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert cache.get(1, lambda: 5) == 5
