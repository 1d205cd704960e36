"""Untrusted decodes in worker processes that a request's deadline can stop.

A thread cannot be stopped: before this pool, a request that passed its
deadline got its 504 but its decode kept running, so two decode bombs filled
the decode threads and every later request waited behind them. Here each
decode runs in one of ``workers`` processes; when the request that owns a
decode is cancelled (its deadline passed, the client left), the worker is
killed and a fresh one takes its place at once, so the deadline frees the
worker, not only the queue slot. A worker that crashes (a decoder segfault, the
kernel's OOM killer) fails only its own image (422 ``corrupt_image``) and is
replaced the same way.

Why processes and not a watchdog thread or an alarm: Pillow and OpenCV decode
in C with the GIL released, so nothing inside the service's own process can
interrupt them; a separate process is the unit the OS can stop. Up-front bounds
in :mod:`recog.io` (pixel cap, first frame only, JPEG scan cap) keep honest work
small; this pool is what bounds the work nobody thought of.

Workers start from a fork server (``forkserver`` start method, this module
and the decoders it imports preloaded), so a replacement is up in milliseconds and never inherits the
parent's threads or models; where there is no fork server (Windows) they are
spawned. A job is a picklable module-level function and its arguments; it runs
as ``fn(*args)`` and returns a picklable value. Workers ignore SIGINT (the
parent stops them) and exit when the parent goes away.

Example:
    >>> pool = DecodePool(2)                                              # doctest: +SKIP
    >>> await pool.start()                                                # doctest: +SKIP
    >>> x = await pool.run(preprocess_image, data, prep, 50_000_000)      # doctest: +SKIP
    >>> await pool.close()                                                # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from recog.data.decode import decode_to_input
from recog.data.transforms import normalize
from recog.errors import CorruptImageError, NotReadyError, RecogError
from recog.io import load_image
from recog.types import Preprocessing

log = logging.getLogger("recog.serve")


# --------------------------------------------------------------------------- jobs (run in a worker)


def preprocess_image(data: bytes, prep: Preprocessing, max_pixels: int) -> np.ndarray:
    """Image bytes → float32 ``(3, H, W)`` model input: what ``Predictor.preprocess`` does, by value.

    The predictor itself holds a model and does not travel to a worker; its
    preprocessing settings do.
    """
    return normalize(decode_to_input(data, prep, max_pixels=max_pixels), prep)


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Decode ``data`` once and return its (width, height): proof it decodes within the deadline.

    The face routes run this before handing the same bytes to the face analyzer
    (which decodes them again in a thread): a decode that finished here once
    takes the same bounded time there.
    """
    return load_image(data, max_pixels=max_pixels).size


# --------------------------------------------------------------------------- the worker process


def _worker_main(conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent closed its end or died
            return
        if job is None:
            return
        fn, args = job
        try:
            reply: tuple = ("ok", fn(*args))
        except RecogError as exc:
            reply = ("recog", type(exc), exc.message, exc.hint)
        except Exception as exc:  # a bug in a job: the parent logs it and answers 500
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except Exception as exc:  # the result cannot be pickled: say so instead of dying silently
            conn.send(("error", f"result of {getattr(fn, '__name__', fn)} cannot be sent back ({exc})"))


def _context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])  # only takes effect before the fork server first starts
        return ctx
    return multiprocessing.get_context("spawn")


class _WorkerDied(Exception):
    pass


def _rebuild(cls: type[RecogError], message: str, hint: str | None) -> RecogError:
    """The library error a worker raised, rebuilt in the parent (classes travel by reference)."""
    try:
        return cls(message, hint=hint)
    except TypeError:  # a subclass with other required arguments: same class, same text
        exc = cls.__new__(cls)
        RecogError.__init__(exc, message, hint=hint)
        return exc


class _Worker:
    def __init__(self, ctx, name: str) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child,), name=name, daemon=True)
        self.process.start()
        child.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def call(self, job: tuple) -> tuple:
        """Blocking: send the job, wait for its reply (run in an I/O thread)."""
        try:
            self.conn.send(job)
            return self.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            raise _WorkerDied(str(exc)) from None

    def kill(self) -> None:
        try:
            self.process.kill()
        except (OSError, ValueError):
            pass
        self.conn.close()

    def stop(self, timeout: float) -> None:
        """Ask an idle worker to exit; kill it if it does not."""
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self.conn.close()


class DecodePool:
    """``workers`` decode processes; a cancelled job kills its worker and a new one replaces it.

    Args:
        workers: processes (and so decodes running at once).
        name: process name prefix.

    Use from one event loop: :meth:`start`, then :meth:`run` from any task, then :meth:`close`.
    """

    def __init__(self, workers: int, *, name: str = "recog-decode") -> None:
        self.workers = max(1, int(workers))
        self.name = name
        self._ctx = None
        self._idle: asyncio.Queue[_Worker] | None = None
        self._live: set[_Worker] = set()   # started and not killed: idle or busy
        self._busy: set[_Worker] = set()
        self._missing = 0        # workers that could not be started; retried at the next job
        self._count = 0
        self._closed = False
        # One thread per in-flight job waits on its pipe; a killed worker's thread returns at once
        # (EOF), and the extra threads cover the moment a replacement gets a job before that.
        self._io = ThreadPoolExecutor(max_workers=2 * self.workers + 1, thread_name_prefix=f"{name}-io")
        self.replaced = 0        # workers killed on cancellation or found dead (for tests and logs)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the workers (the first start of the fork server takes a moment: off the loop)."""
        self._ctx = await asyncio.to_thread(_context)
        self._idle = asyncio.Queue()
        workers = await asyncio.to_thread(lambda: [self._new_worker() for _ in range(self.workers)])
        for w in workers:
            self._idle.put_nowait(w)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop idle workers, kill busy ones; later jobs get :class:`NotReadyError`."""
        self._closed = True
        for w in list(self._busy):
            w.kill()
        idle = [w for w in self._live if w not in self._busy]
        self._live.clear()
        await asyncio.to_thread(lambda: [w.stop(timeout) for w in idle])
        self._io.shutdown(wait=False, cancel_futures=True)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (idle and busy)."""
        return [w.pid for w in self._live if w.pid is not None]

    # ------------------------------------------------------------------ jobs

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker process; cancel-safe (cancelling kills and replaces the worker).

        Raises:
            RecogError: what ``fn`` raised (an :class:`~recog.errors.ImageError` for a bad image).
            CorruptImageError: the worker died on this job (422).
            RuntimeError: ``fn`` failed with an unexpected error (a bug; logged).
            NotReadyError: the pool is closed.
        """
        worker = await self._take()
        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(self._io, worker.call, (fn, args))
        except _WorkerDied:
            self._replace(worker, "died")
            raise CorruptImageError("decoding this image crashed the decoder process.",
                                    hint="the file is probably damaged; re-export it as JPEG or PNG") from None
        except BaseException:  # cancelled: the deadline passed or the client went away
            self._replace(worker, "cancelled")
            raise
        self._busy.discard(worker)
        if self._closed:
            worker.kill()
            self._live.discard(worker)
        else:
            self._idle.put_nowait(worker)  # type: ignore[union-attr]
        kind = reply[0]
        if kind == "ok":
            return reply[1]
        if kind == "recog":
            _, cls, message, hint = reply
            raise _rebuild(cls, message, hint)
        log.error("decode job %s failed: %s", getattr(fn, "__name__", fn), reply[1])
        raise RuntimeError(reply[1])

    async def run_each(self, fn: Callable[..., Any], items: list[Any], *args: Any) -> list[Any]:
        """``fn(item, *args)`` for every item, in parallel across the workers; a failure is returned in
        its item's place (an exception object), so one bad image does not hide which one it was."""
        return await asyncio.gather(*(self.run(fn, item, *args) for item in items), return_exceptions=True)

    async def _take(self) -> _Worker:
        if self._closed or self._idle is None:
            raise NotReadyError("the decoder pool is not running (the service is starting or stopping).",
                                hint="retry in a moment")
        if self._missing:
            self._refill()
        worker = await self._idle.get()
        self._busy.add(worker)
        return worker

    def _new_worker(self) -> _Worker:
        self._count += 1
        worker = _Worker(self._ctx, f"{self.name}-{self._count}")
        self._live.add(worker)
        return worker

    def _replace(self, worker: _Worker, why: str) -> None:
        """Kill ``worker`` (its thread returns once the pipe closes) and put a fresh one in its place."""
        self._busy.discard(worker)
        self._live.discard(worker)
        worker.kill()
        self.replaced += 1
        log.warning("decode worker %s %s; replacing it", worker.pid, "was stopped at the deadline"
                    if why == "cancelled" else "died")
        threading.Thread(target=worker.process.join, args=(5.0,), daemon=True).start()  # reap it
        if self._closed:
            return
        self._missing += 1
        self._refill()

    def _refill(self) -> None:
        while self._missing:
            try:
                worker = self._new_worker()
            except Exception:
                log.exception("cannot start a decode worker; will retry at the next request")
                return
            self._missing -= 1
            self._idle.put_nowait(worker)  # type: ignore[union-attr]
