"""Embedding ahead of the write path: texts are embedded on a background thread, a group at
a time, while the caller goes on recognising the next records and caching the vectors of the
groups already done.

onnxruntime (and the other embedders' slow parts: numpy, an HTTP call) release the GIL, so
the embedder keeps the cores busy while the write path's Python work (chunking, MinHash
recognition, fact keys, phrase extraction, SQL) runs beside it instead of between its
batches. At most ``depth`` finished groups wait for the caller to take them (then the
thread waits too), so no more than ``depth + 1`` groups of vectors are in flight. The thread
lives for one write: :meth:`EmbedAhead.close` (or leaving the ``with`` block) stops it
after the group it is on and joins it, whatever happened.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType

from engramdb.types import Matrix

__all__ = ["EmbedAhead", "Group"]

Group = tuple[list[str], Matrix]
"""The keys of a group of texts and their vectors, row for row."""


class EmbedAhead:
    """Runs ``embed`` on groups of texts in submission order, on a thread of its own.

    With ``threaded=False`` each group is embedded when it is submitted, on the caller's
    thread (the same results in the same order, nothing overlapping): the sequential path,
    kept for comparison and for callers that want no thread.

    Example:
        >>> import numpy as np
        >>> with EmbedAhead(lambda texts: np.zeros((len(texts), 2), np.float32)) as ahead:
        ...     ahead.submit(["a"], ["some text"])
        ...     [keys for keys, _ in ahead.finish()]
        [['a']]
    """

    def __init__(
        self, embed: Callable[[list[str]], Matrix], *, threaded: bool = True, depth: int = 2
    ):
        self._embed = embed
        self._threaded = threaded
        self._depth = max(1, depth)
        self._cond = threading.Condition()
        self._todo: deque[tuple[list[str], list[str]]] = deque()
        self._done: deque[Group] = deque()
        self._error: BaseException | None = None
        self._closed = False  # no more submissions
        self._stopped = False  # the caller gave up: the thread ends after its group
        self._running = False  # the thread holds a group not in _done yet
        self._thread: threading.Thread | None = None
        self.busy = 0.0
        """Seconds spent inside ``embed`` (on the thread, or the caller's when not threaded)."""

    def __enter__(self) -> EmbedAhead:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def submit(self, keys: Sequence[str], texts: Sequence[str]) -> None:
        """Queue a group (``keys[i]`` names ``texts[i]``); returns at once when threaded.
        An error of ``embed`` is raised by :meth:`ready` or :meth:`finish`, after the
        groups before it, in both modes."""
        group = (list(keys), list(texts))
        if not self._threaded:
            if self._error is None and not self._closed:
                try:
                    self._done.append((group[0], self._run(group[1])))
                except Exception as exc:  # noqa: BLE001 - raised once the groups before are taken
                    self._error = exc
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("EmbedAhead: submit after finish or close")
            self._todo.append(group)
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="engramdb-embed", daemon=True
                )
                self._thread.start()

    def ready(self) -> Iterator[Group]:
        """The groups finished so far, in submission order, without waiting.

        Raises:
            Exception: what ``embed`` raised on a group, once the groups before it are
                taken (the groups after it are not run).
        """
        while True:
            with self._cond:
                if not self._done:
                    if self._error is not None:
                        raise self._error
                    return
                group = self._done.popleft()
                self._cond.notify_all()
            yield group

    def finish(self) -> Iterator[Group]:
        """Every group not taken yet, in submission order, waiting for those still running;
        nothing can be submitted after.

        Raises:
            Exception: what ``embed`` raised on a group, once the groups before it are taken.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        while True:
            with self._cond:
                self._cond.wait_for(self._finished_or_ready)
                if not self._done:
                    if self._error is not None:
                        raise self._error
                    return
                group = self._done.popleft()
                self._cond.notify_all()
            yield group

    def close(self) -> None:
        """Stop the thread after the group it is embedding and wait for it; idempotent."""
        with self._cond:
            self._closed = self._stopped = True
            self._todo.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._done.clear()

    # -- the thread ---------------------------------------------------------------------------

    def _finished_or_ready(self) -> bool:
        return bool(self._done) or self._error is not None or not (self._todo or self._running)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._todo or self._closed)
                if self._stopped or not self._todo:
                    return
                keys, texts = self._todo.popleft()
                self._running = True
            try:
                vectors = self._run(texts)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                with self._cond:
                    self._error = exc
                    self._todo.clear()
                    self._running = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._cond.wait_for(lambda: len(self._done) < self._depth or self._stopped)
                self._running = False
                self._cond.notify_all()
                if self._stopped:
                    return
                self._done.append((keys, vectors))

    def _run(self, texts: list[str]) -> Matrix:
        start = time.perf_counter()
        try:
            return self._embed(texts)
        finally:
            self.busy += time.perf_counter() - start
