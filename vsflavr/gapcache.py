"""A bounded, thread-safe cache that computes each key once, however many threads ask at the same time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

__all__ = ["OnceCache"]


class OnceCache[K, V]:
    """Keeps the ``capacity`` most recently used results.

    ``get(key, compute)`` returns the cached value, waits for a computation of ``key``
    already running in another thread, or runs ``compute()`` itself.  A failed
    computation is not cached: its exception goes to every waiter, and the next call
    tries again.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, Future[V]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: K, compute: Callable[[], V]) -> V:
        with self._lock:
            future = self._entries.get(key)
            owner = future is None
            if future is None:
                future = self._entries[key] = Future()
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                with self._lock:
                    if self._entries.get(key) is future:
                        del self._entries[key]
                future.set_exception(exc)
        return future.result()
