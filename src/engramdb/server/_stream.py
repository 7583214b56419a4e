"""NDJSON from a synchronous iterator, produced on one thread of its own.

The records come from a generator that reads the store inside one read snapshot, on the
connection of the thread that runs it; so the whole generator runs on one dedicated thread
(not on whichever threadpool worker is free for each item), which hands encoded lines to the
response through a small bounded queue. The first chunk is awaited before the response
starts, so an error there is still an ordinary error response.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import anyio.to_thread
from fastapi.responses import StreamingResponse

__all__ = ["NDJSON", "ndjson_response"]

NDJSON = "application/x-ndjson"
_CHUNK_BYTES = 64 * 1024
_POLL_S = 0.25


class _Feed:
    """The producer thread and the queue between it and the response."""

    def __init__(self, produce: Callable[[], Iterable[dict[str, Any]]]):
        self._produce = produce
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engramdb-export", daemon=True)
        self._thread.start()

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        records: Iterator[dict[str, Any]] | None = None
        try:
            records = iter(self._produce())
            lines: list[bytes] = []
            size = 0
            for record in records:
                line = json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"
                lines.append(line)
                size += len(line)
                if size >= _CHUNK_BYTES:
                    if not self._put(b"".join(lines)):
                        return
                    lines, size = [], 0
            if lines and not self._put(b"".join(lines)):
                return
            self._put(None)
        except BaseException as exc:  # handed to the response, which raises it
            self._put(exc)
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()  # on this thread, where the generator ran

    def _get(self) -> bytes | BaseException | None:
        while True:
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._closed.is_set() or not self._thread.is_alive():
                    return None if self._queue.empty() else self._queue.get_nowait()

    async def next_chunk(self) -> bytes | None:
        """The next chunk of lines; ``None`` at the end.

        Raises:
            Exception: whatever the records' iterator raised.
        """
        item = await anyio.to_thread.run_sync(self._get)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the producer (it ends at its next hand-over)."""
        self._closed.set()


async def ndjson_response(produce: Callable[[], Iterable[dict[str, Any]]]) -> StreamingResponse:
    """A streaming ``application/x-ndjson`` response of the records ``produce()`` yields.

    Raises:
        Exception: whatever producing the first chunk raised (before the response starts).
    """
    feed = _Feed(produce)
    try:
        first = await feed.next_chunk()
    except BaseException:
        feed.close()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            chunk = first
            while chunk is not None:
                yield chunk
                chunk = await feed.next_chunk()
        finally:
            feed.close()

    return StreamingResponse(body(), media_type=NDJSON)
