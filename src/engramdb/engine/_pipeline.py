"""Embedding ahead of the write path: texts are embedded on a background thread, a group at
a time, while the caller goes on recognising records and caching the vectors of the groups
already done.

onnxruntime (and the other embedders' slow parts: numpy, an HTTP call) release the GIL, so
the embedder keeps the cores busy while the write path's Python work (MinHash recognition,
fact keys, phrase extraction, SQL) runs beside it instead of between its batches. The thread
asks the caller's ``groups`` function for each next group when it is ready for one, so the
caller can still leave out texts it learnt meanwhile that it does not need. At most
``depth`` finished groups wait for the caller to take them (then the thread waits too), so
no more than ``depth + 1`` groups of vectors are in flight. The thread lives for one write:
:meth:`EmbedAhead.close` (or leaving the ``with`` block) stops it after the group it is on
and joins it, whatever happened.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType

from engramdb.types import Matrix

__all__ = ["EmbedAhead", "Group", "Todo"]

Todo = tuple[list[str], list[str]]
"""The keys of a group of texts and the texts, item for item."""

Group = tuple[list[str], Matrix]
"""The keys of a group of texts and their vectors, row for row."""


class EmbedAhead:
    """Runs ``embed`` on the groups ``groups()`` returns (``None``: no more), in order.

    Threaded (the default), a thread of its own asks for and embeds the groups from
    :meth:`start` on; with ``threaded=False`` nothing runs before :meth:`finish`, which
    embeds them in turn on the caller's thread (the sequential path, for comparison and
    for callers that want no thread).

    Example:
        >>> import numpy as np
        >>> todo = [(["a"], ["some text"])]
        >>> embed = lambda texts: np.zeros((len(texts), 2), np.float32)
        >>> with EmbedAhead(embed, lambda: todo.pop() if todo else None) as ahead:
        ...     ahead.start()
        ...     [keys for keys, _ in ahead.finish()]
        [['a']]
    """

    def __init__(
        self,
        embed: Callable[[list[str]], Matrix],
        groups: Callable[[], Todo | None],
        *,
        threaded: bool = True,
        depth: int = 2,
    ):
        self._embed = embed
        self._groups = groups
        self._threaded = threaded
        self._depth = max(1, depth)
        self._cond = threading.Condition()
        self._done: deque[Group] = deque()
        self._error: BaseException | None = None
        self._stopped = False  # the caller gave up: the thread ends after its group
        self._exited = False  # the thread has ended (or never ran)
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

    def start(self) -> None:
        """Start the thread (threaded only; once)."""
        if self._threaded and self._thread is None and not self._stopped:
            self._thread = threading.Thread(target=self._work, name="engramdb-embed", daemon=True)
            self._thread.start()

    def ready(self) -> Iterator[Group]:
        """The groups finished so far, in order, without waiting (an error of the thread
        waits for :meth:`finish`)."""
        while True:
            with self._cond:
                if not self._done:
                    return
                group = self._done.popleft()
                self._cond.notify_all()
            yield group

    def finish(self) -> Iterator[Group]:
        """Every group not taken yet, in order: waiting for the thread, or (not threaded)
        embedding each in turn here.

        Raises:
            Exception: what ``embed`` or ``groups`` raised, once the groups before it are
                taken.
        """
        if not self._threaded:
            while (todo := self._groups()) is not None:
                yield todo[0], self._run(todo[1])
            return
        self.start()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._done or self._error or self._exited)
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
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._done.clear()

    # -- the thread ---------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while not self._stopped:
                todo = self._groups()
                if todo is None:
                    return
                vectors = self._run(todo[1])
                with self._cond:
                    self._cond.wait_for(lambda: len(self._done) < self._depth or self._stopped)
                    if self._stopped:
                        return
                    self._done.append((todo[0], vectors))
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            with self._cond:
                self._error = exc
        finally:
            with self._cond:
                self._exited = True
                self._cond.notify_all()

    def _run(self, texts: list[str]) -> Matrix:
        start = time.perf_counter()
        try:
            return self._embed(texts)
        finally:
            self.busy += time.perf_counter() - start
