"""Write and hash received chunks on worker threads, so receiving, writing and hashing overlap.

File writes and ``hashlib`` updates release the GIL, so receiving the next chunk, writing this
one and hashing the previous one run at the same time: a download costs about the slowest of the
three instead of their sum.  Queues are short and chunks live in a small ring of reusable
buffers, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import queue
import threading

from hub.assets.integrity import CHUNK_SIZE


class ChunkPipeline:
    """Hands each received chunk to one worker thread per sink (``file.write``, ``hash.update``)."""

    DEPTH = 4

    def __init__(self, *sinks, chunk_size: int = CHUNK_SIZE):
        # Each worker has at most DEPTH chunks queued and one in hand, so a ring of DEPTH + 2
        # buffers never hands out one that a worker still reads.
        self._ring = [memoryview(bytearray(chunk_size)) for _ in range(self.DEPTH + 2)]
        self._next = 0
        self._workers = [_Worker(sink, self.DEPTH) for sink in sinks]

    def next_buffer(self) -> memoryview:
        """A buffer to receive the next chunk into (then pass a slice of it to :meth:`put`)."""
        buf = self._ring[self._next]
        self._next = (self._next + 1) % len(self._ring)
        return buf

    def put(self, chunk: memoryview) -> None:
        for w in self._workers:
            if w.error is not None:
                self.close()
            w.queue.put(chunk)

    def close(self) -> None:
        """Wait for every queued chunk (idempotent); re-raise the first worker failure."""
        for w in self._workers:
            w.stop()
        for w in self._workers:
            if w.error is not None:
                raise w.error


class _Worker:
    def __init__(self, sink, depth: int):
        self.sink = sink
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="yolohub-transfer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.sink(chunk)
                except BaseException as exc:  # re-raised in the caller's thread by close()
                    self.error = exc

    def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
