"""Image reading and letterboxing in worker processes, results back in submission order.

Each worker owns one socket pair: task ``i`` goes to worker ``i % n`` and every worker answers
its tasks first-in first-out, so reading results in submission order needs no reordering.  A
worker that dies closes its socket (the parent sees end-of-file at once); one that stops
answering is given up after ``timeout`` seconds.  Either way the caller gets a
:class:`WorkerError` and every worker is killed.

Workers are fresh interpreters (``python -c``), never ``fork`` copies: a forked copy of a
process running MindSpore inherits its thread pools in an undefined state.  Unlike
multiprocessing's ``spawn`` and ``forkserver``, they do not re-import the caller's main script
(a script that imports MindSpore at the top cost each spawned worker ~10 s and ~300 MB); they
import NumPy, OpenCV and Pillow only.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from yolomodels.errors import ImageReadError, WorkerError
from yolomodels.postprocess import PreprocessMeta

STARTUP_TIMEOUT = 120.0  # seconds for a worker to start (Python, NumPy, OpenCV imports)
Prepared = tuple[np.ndarray, PreprocessMeta, tuple[int, int]]  # (input, meta, original (h, w))


def prepare(path: str | os.PathLike, img_size: int) -> Prepared:
    """One image's network input: read (``yolomodels.images``), then eval-preprocess it."""
    from yolomodels.images import read_image
    from yolomodels.postprocess import preprocess

    image = read_image(path)
    x, meta = preprocess(image, img_size)
    return x, meta, (int(image.shape[0]), int(image.shape[1]))


class Channel:
    """Length-prefixed pickles over a stream socket, with a deadline on every read.

    (``multiprocessing.connection`` cannot time out inside a message: a worker stopped halfway
    through sending one would block the parent for ever.)"""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def send(self, obj) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(struct.pack("!Q", len(data)) + data)

    def recv(self, deadline: float | None = None):
        """The next object; EOFError when the other end is closed, TimeoutError at
        ``deadline`` (a ``time.monotonic()`` value)."""
        (n,) = struct.unpack("!Q", self._read(8, deadline))
        return pickle.loads(self._read(n, deadline))

    def _read(self, n: int, deadline: float | None) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
            try:
                k = self.sock.recv_into(view[got:])
            except socket.timeout:
                raise TimeoutError from None
            except OSError:
                raise EOFError from None
            if k == 0:
                raise EOFError
            got += k
        return buf

    def close(self) -> None:
        self.sock.close()


def serve(fd: int, img_size: int) -> None:
    """Entry point of a worker process: serve the socket ``fd`` until told to stop."""
    _serve(Channel(socket.socket(fileno=fd)), img_size)


def _serve(conn: Channel, img_size: int) -> None:
    """Worker main loop: ``(seq, path)`` in, ``("ok", seq, x, meta, hw)`` or an error out.

    A thread sends the answers, so the worker prepares the next image while the parent is
    still busy with the network and has not read the last one (a pipe holds far less than an
    image); the parent bounds how many images it asks for ahead.
    """
    import queue
    import signal
    import threading

    import cv2

    from yolomodels.images import read_image  # noqa: F401 - imported before "ready"
    from yolomodels.postprocess import preprocess  # noqa: F401

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    cv2.setNumThreads(1)  # one image per worker; the cores belong to the network
    try:
        conn.send(("ready", -1))
    except OSError:
        return
    answers: queue.Queue = queue.Queue()

    def send() -> None:
        while (msg := answers.get()) is not None:
            try:
                conn.send(msg)
            except OSError:
                return  # the parent is gone

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            task = None  # the parent is gone
        if task is None:
            break
        seq, path = task
        try:
            answers.put(("ok", seq, *prepare(path, img_size)))
        except ImageReadError as exc:
            answers.put(("image", seq, str(exc), exc.path))
        except Exception as exc:  # noqa: BLE001 - reported to the parent with its type
            answers.put(("failed", seq, f"{type(exc).__name__}: {exc}", str(path)))
    answers.put(None)
    sender.join(timeout=5.0)


class ImageWorkers:
    """``count`` worker processes preparing images for ``img_size``; use as a context manager.

    ``submit(seq, path)`` queues image number ``seq`` (0, 1, 2, ... in order) and
    ``result(seq)`` returns it, in the same order.  The caller bounds how far ahead it submits.
    """

    def __init__(self, count: int, *, img_size: int, timeout: float = 120.0):
        if count < 1:
            raise ValueError(f"ImageWorkers needs at least one worker, got {count}")
        self.timeout = float(timeout)
        # a loaded machine can take many seconds to start Python and import OpenCV
        self.startup_timeout = max(STARTUP_TIMEOUT, self.timeout)
        self._conns: list[Channel] = []
        self._procs: list[subprocess.Popen] = []
        self._ready: list[bool] = []
        env = dict(os.environ)
        root = Path(__file__).resolve().parents[2]
        if root.name not in ("site-packages", "dist-packages"):
            # a source tree: the workers import this very yolomodels, not another install
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(root), env.get("PYTHONPATH")) if p
            )
        try:
            for _ in range(count):
                ours, theirs = socket.socketpair()
                code = f"from yolomodels.eval.workers import serve; serve({theirs.fileno()}, " \
                       f"{int(img_size)})"  # fmt: skip
                proc = subprocess.Popen(
                    [sys.executable, "-c", code], pass_fds=(theirs.fileno(),), env=env,
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
                theirs.close()  # only the worker holds its end now: its death reads as EOF here
                self._conns.append(Channel(ours))
                self._procs.append(proc)
            self._ready = [False] * count
        except BaseException:
            self.kill()
            raise

    def __enter__(self) -> ImageWorkers:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def submit(self, seq: int, path: str | os.PathLike) -> None:
        k = seq % len(self._conns)
        try:
            self._conns[k].send((seq, str(path)))
        except (BrokenPipeError, ConnectionResetError, OSError):
            raise self._died(k, f"image {path}") from None

    def result(self, seq: int) -> Prepared:
        """Image ``seq``'s prepared input; ImageReadError as reading it in this process would
        raise, WorkerError when its worker died or gave no answer within ``timeout``."""
        k = seq % len(self._conns)
        if not self._ready[k]:
            self._receive(k, f"start-up before image number {seq}", self.startup_timeout)
            self._ready[k] = True
        msg = self._receive(k, f"image number {seq}", self.timeout)
        kind, got = msg[0], msg[1]
        if got != seq:  # cannot happen while results are read in submission order
            raise WorkerError(f"image worker answered image {got} when image {seq} was due")
        if kind == "ok":
            return msg[2], msg[3], msg[4]
        if kind == "image":
            raise ImageReadError(msg[2], path=msg[3])
        raise WorkerError(f"preparing image {msg[3]} failed in a worker: {msg[2]}")

    def _receive(self, k: int, what: str, timeout: float):
        proc = self._procs[k]
        try:
            return self._conns[k].recv(deadline=time.monotonic() + timeout)
        except EOFError:
            raise self._died(k, what) from None
        except TimeoutError:
            if proc.poll() is not None:
                raise self._died(k, what) from None
            raise WorkerError(
                f"image worker pid {proc.pid} gave no answer for {what} within {timeout:g} s; "
                "the machine may be overloaded or the worker stuck. Retry, or run with "
                "workers=0 (no worker processes)"
            ) from None

    def _died(self, k: int, what: str) -> WorkerError:
        proc = self._procs[k]
        try:
            code = proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            code = None
        how = f"was killed by signal {-code}" if code is not None and code < 0 else (
            f"exited with code {code}" if code is not None else "closed its connection"
        )  # fmt: skip
        return WorkerError(
            f"image worker pid {proc.pid} {how} while preparing {what}; if memory is short, "
            "lower the batch size, or run with workers=0 (no worker processes)"
        )

    def close(self) -> None:
        """Ask every worker to stop, wait briefly, then kill any that did not."""
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self._procs:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self._procs:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
        for conn in self._conns:
            conn.close()
        self._procs, self._conns, self._ready = [], [], []


class InlineImages:
    """The same interface without processes: each image is prepared when its result is asked
    for (``workers=0``: the plain sequential loop)."""

    def __init__(self, *, img_size: int):
        self._img_size = int(img_size)
        self._paths: dict[int, str] = {}

    def __enter__(self) -> InlineImages:
        return self

    def __exit__(self, *exc) -> None:
        self._paths.clear()

    def submit(self, seq: int, path: str | os.PathLike) -> None:
        self._paths[seq] = str(path)

    def result(self, seq: int) -> Prepared:
        return prepare(self._paths.pop(seq), self._img_size)


def default_workers(cpus: int | None = None) -> int:
    """Worker processes by default: half the cores (the network uses them too), 1 to 4; none
    where workers cannot be started this way (no inheritable sockets outside POSIX)."""
    if os.name != "posix":
        return 0
    cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0))
                                          if hasattr(os, "sched_getaffinity") else os.cpu_count())
    return max(1, min(4, (cpus or 1) // 2))

