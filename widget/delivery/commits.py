"""Group commit: requests that arrive together share one durable transaction.

Every accepted review must be on disk before its 202 leaves, and a durable commit costs an
fsync (SQLite in WAL with synchronous=FULL) or a round trip and a WAL flush (Postgres). One
commit per review made that the largest part of a submission's cost. Here the first caller
becomes the leader: it lets the requests already under way reach this point (one turn of
the event loop under gevent), takes every waiting item, and writes them all in one
transaction; the others wait until their item is done. Nobody is answered before the
transaction holding their row has committed, so the promise of a 202 is unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from widget.background import gevent_patched

T = TypeVar("T")
R = TypeVar("R")
# Turns of the event loop the leader gives latecomers: each turn lets the requests read
# meanwhile reach the queue; it stops as soon as a turn brings nobody new.
GATHER_TURNS = 4


class Pending(Generic[T, R]):
    """One caller's item and, once its batch is written, its result or its error."""

    __slots__ = ("item", "result", "error", "done", "leads", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.done = False
        self.leads = False  # this caller writes the next batch
        self.wake = threading.Event()  # set when done, or when handed the lead

    def finish(self, result: R | None = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.done = result, error, True
        self.wake.set()


class GroupCommit(Generic[T, R]):
    """Runs `write(batch)` for batches of concurrent callers' items, one batch at a time.

    `write` must call `finish` on every Pending of the batch; one it leaves unfinished gets
    a RuntimeError rather than waiting for ever. Each caller is woken once: when its item
    is done, or when it is its turn to lead.
    """

    def __init__(self, write: Callable[[list[Pending[T, R]]], None], max_batch: int = 64,
                 gather: Callable[[], None] | None = None) -> None:
        self._write = write
        self._max_batch = max_batch
        self._gather = gather or let_others_arrive
        self._lock = threading.Lock()
        self._waiting: list[Pending[T, R]] = []
        self._leading = False
        self.batches = 0  # for tests and benchmarks: how many transactions were written
        self.items = 0

    def submit(self, item: T) -> R:
        """Write `item` in the next batch and return its result (or raise its error)."""
        pending: Pending[T, R] = Pending(item)
        with self._lock:
            self._waiting.append(pending)
            pending.leads = not self._leading
            self._leading = True
        while not pending.done:
            if pending.leads:
                self._lead(pending)  # a long queue may take more than one batch to reach ours
            else:
                pending.wake.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def _lead(self, leader: Pending[T, R]) -> None:
        try:
            self._gather_batch()
            with self._lock:
                batch = self._waiting[:self._max_batch]
                del self._waiting[:self._max_batch]
            try:
                self._write(batch)
            except Exception as error:
                fail(batch, error)
            except BaseException as error:  # the leader is being killed: tell the rest first
                fail(batch, error)
                raise
            finally:
                self.batches += 1
                self.items += len(batch)
            fail(batch, RuntimeError("the batch writer left an item unfinished"))
        finally:
            leader.leads = False
            with self._lock:
                successor = self._waiting[0] if self._waiting else None
                self._leading = successor is not None
                if successor is not None:
                    successor.leads = True
            if successor is not None:
                successor.wake.set()

    def _gather_batch(self) -> None:
        """While others keep arriving (and the batch has room), give them another turn."""
        waiting = 0
        for _ in range(GATHER_TURNS):
            with self._lock:
                if len(self._waiting) == waiting or waiting >= self._max_batch:
                    return
                waiting = len(self._waiting)
            self._gather()


def fail(batch: list[Pending], error: BaseException) -> None:
    """Give `error` to every item of the batch that has no outcome yet."""
    for pending in batch:
        if not pending.done:
            pending.finish(error=error)


def on_a_real_thread(work: Callable[..., R], *args: object) -> R:
    """`work(*args)` on a real thread of gevent's hub pool when gevent drives this process,
    the calling greenlet waiting while the loop serves the others; without gevent, here.
    Its error is raised here (gevent would print the traceback of one raised in its
    pool)."""
    if not gevent_patched():
        return work(*args)
    import gevent

    def captured() -> tuple[R | None, BaseException | None]:
        try:
            return work(*args), None
        except Exception as error:
            return None, error

    result, error = gevent.get_hub().threadpool.apply(captured)
    if error is not None:
        raise error
    return result  # type: ignore[return-value]


def let_others_arrive() -> None:
    """Under gevent (the Procfile's web role), one turn of the event loop, so that requests
    already read reach the queue before the leader writes; greenlets only switch when one
    waits. Real threads need nothing: they queue while the leader's commit waits on disk."""
    if gevent_patched():
        import gevent

        gevent.sleep(0)
