"""Dynamic batching: gather concurrent requests into batches for one model.

The batcher knows nothing about HTTP or models: it takes an ``infer`` callable
(float32 ``(N, ...)`` → ``(N, C)``) and runs it in its own worker thread, so the
event loop stays responsive while a batch computes.

Flow of one request::

    ticket = batcher.admit(k)        # k images; OverloadedError (429) at once when full (deps.Admission)
    x = <preprocess off the loop>    # the ticket tells the batcher k items are on the way
    rows = await batcher.run(ticket, [x1, ..., xk], deadline=t)   # DeadlineExceededError (504)
    ticket.release()                 # frees the k slots (also on error, via ``with ticket``)

Batching policy: the worker takes the first queued item, then keeps adding
items until the batch has ``max_batch_size`` items, or ``max_delay_ms`` passed,
or no admitted request is still preprocessing (nothing more is on the way, so
waiting would only add latency). A lone request therefore never waits, while
under load the queue fills during each inference and the next batch is full at
once. ``max_batch_size=1`` turns batching off.

One queue can feed several heads of the same model: ``run(..., infer=fn)``
sends items to another callable (the service's ``:embed`` uses the model's
embedder). Items share the queue, the admission limit and the one inference
thread; a gathered batch is split by callable, in queue order, and each part
is one call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from recog.errors import DeadlineExceededError, NotReadyError, RecogError
from recog.serve.deps import Admission

log = logging.getLogger("recog.serve")


class BatchObserver(Protocol):
    """Receives batching events (the service feeds Prometheus metrics with them)."""

    def batch(self, size: int, seconds: float) -> None: ...

    def depth(self, items: int) -> None: ...

    def rejected(self, reason: str) -> None: ...


class _NoObserver:
    def batch(self, size: int, seconds: float) -> None:
        pass

    def depth(self, items: int) -> None:
        pass

    def rejected(self, reason: str) -> None:
        pass


@dataclass(eq=False)
class _Item:
    x: np.ndarray
    future: asyncio.Future
    deadline: float | None
    infer: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(eq=False)
class Ticket:
    """Slots admitted for one request; release it exactly once (``with ticket:`` does)."""

    batcher: "DynamicBatcher"
    slots: int
    preparing: int
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.batcher._release(self)

    def __enter__(self) -> "Ticket":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class DynamicBatcher:
    """Per-model request queue and inference worker.

    Args:
        infer: ``(N, ...) float32 → (N, C)``; called in the batcher's worker thread.
        max_batch_size: most items per ``infer`` call (1: no batching).
        max_delay_ms: most time the first item of a batch waits for company.
        max_queue: most items admitted at once (preprocessing, queued or running).
        name: used in thread names and messages.
        observer: receives batch sizes, queue depth and rejections.

    Example:
        >>> b = DynamicBatcher(lambda x: x.sum(axis=(1, 2, 3))[:, None], max_batch_size=8)  # doctest: +SKIP
        >>> await b.start(); t = b.admit(1); await b.run(t, [np.ones((3, 2, 2), np.float32)])  # doctest: +SKIP
    """

    def __init__(self, infer: Callable[[np.ndarray], np.ndarray], *, max_batch_size: int = 8,
                 max_delay_ms: float = 5.0, max_queue: int = 256, name: str = "model",
                 observer: BatchObserver | None = None) -> None:
        self.infer = infer
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_delay = max(0.0, max_delay_ms) / 1000.0
        self.max_queue = max(1, int(max_queue))
        self.name = name
        self.observer = observer or _NoObserver()
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.admission = Admission(f"model {name}", self.max_queue, retry_after=self._retry_after,
                                   on_reject=lambda: self.observer.rejected("queue_full"))
        self._preparing = 0     # admitted items not yet submitted (still decoding)
        self._closing = False
        self._idle: asyncio.Event | None = None
        self._batch_seconds = 0.05  # running mean of one batch's inference time, for Retry-After

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the worker; call from the event loop that will submit requests."""
        self._queue = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"recog-infer-{self.name}")
        self._task = asyncio.create_task(self._worker(), name=f"recog-batcher-{self.name}")

    async def close(self, *, timeout: float | None = None) -> None:
        """Refuse new requests, let admitted ones finish (up to ``timeout`` s), stop the worker."""
        self._closing = True
        if self._idle is not None and self.admission.admitted:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except asyncio.TimeoutError:
                log.warning("model %s: %d request slots still busy at shutdown", self.name, self.admission.admitted)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def depth(self) -> int:
        """Items admitted and not yet answered (preprocessing, queued or running)."""
        return self.admission.admitted

    def _retry_after(self, admitted: int) -> float:
        """Seconds until the queue has room: the batches ahead times one batch's running mean time."""
        return (admitted / self.max_batch_size + 1) * self._batch_seconds

    # ------------------------------------------------------------------ requests

    def admit(self, n: int) -> Ticket:
        """Reserve ``n`` slots or fail at once.

        Raises:
            OverloadedError: the queue cannot take ``n`` more items (429, with a Retry-After estimate).
            NotReadyError: the batcher is closing (model being replaced or service shutting down).
        """
        if self._closing or self._queue is None:
            raise NotReadyError(f"model {self.name} is not accepting requests (starting, reloading or "
                                "shutting down).", hint="retry in a moment")
        self.admission.admit(n)
        self._preparing += n
        if self._idle is not None:
            self._idle.clear()
        self.observer.depth(self.admission.admitted)
        return Ticket(self, n, n)

    def _release(self, ticket: Ticket) -> None:
        self.admission.release(ticket.slots)
        self._preparing -= ticket.preparing
        ticket.preparing = 0
        self.observer.depth(self.admission.admitted)
        if self.admission.admitted == 0 and self._idle is not None:
            self._idle.set()

    async def run(self, ticket: Ticket, xs: Sequence[np.ndarray], *, deadline: float | None = None,
                  infer: Callable[[np.ndarray], np.ndarray] | None = None) -> list[np.ndarray]:
        """Queue ``xs`` (already admitted by ``ticket``) and wait for their output rows.

        Args:
            deadline: ``time.monotonic()`` after which the request is abandoned.
            infer: run these items through this callable instead of the batcher's own
                (another head of the same model); batched with items for the same callable.

        Raises:
            DeadlineExceededError: the deadline passed first; the items are dropped from the queue.
        """
        loop = asyncio.get_running_loop()
        items = [_Item(x, loop.create_future(), deadline, infer) for x in xs]
        if self._queue is None:
            raise NotReadyError(f"model {self.name}: the batcher was not started.")
        for item in items:
            self._queue.put_nowait(item)
        ticket.preparing -= len(items)
        self._preparing -= len(items)
        futures = [i.future for i in items]
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            done = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        except asyncio.TimeoutError:
            for f in futures:
                f.cancel()
            self.observer.rejected("deadline")
            raise DeadlineExceededError(
                f"model {self.name}: the request passed its deadline while waiting for inference.",
                hint="retry later, send fewer images, or raise the request timeout") from None
        return list(done)

    def abandon(self, ticket: Ticket, n: int) -> None:
        """``n`` of the ticket's items will never be submitted (their preprocessing failed)."""
        n = min(n, ticket.preparing)
        ticket.preparing -= n
        self._preparing -= n

    # ------------------------------------------------------------------ worker

    async def _gather(self) -> list[_Item]:
        queue = self._queue
        batch = [await queue.get()]
        until = time.monotonic() + self.max_delay
        while len(batch) < self.max_batch_size:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            left = until - time.monotonic()
            if self._preparing <= 0 or left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), left))
            except asyncio.TimeoutError:
                break
        return batch

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            now = time.monotonic()
            live = []
            for item in batch:
                if item.future.done():          # abandoned by a request that timed out
                    continue
                if item.deadline is not None and item.deadline <= now:
                    item.future.set_exception(DeadlineExceededError(
                        f"model {self.name}: the request passed its deadline in the queue."))
                    continue
                live.append(item)
            groups: dict[Callable, list[_Item]] = {}
            for item in live:
                groups.setdefault(item.infer or self.infer, []).append(item)
            for infer, items in groups.items():
                await self._run_batch(loop, infer, items)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, infer: Callable[[np.ndarray], np.ndarray],
                         items: list[_Item]) -> None:
        start = time.perf_counter()
        try:
            x = np.stack([i.x for i in items])
            out = await loop.run_in_executor(self._executor, infer, x)
        except RecogError as exc:
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        except Exception as exc:  # a model bug must fail its requests, not kill the worker
            log.exception("model %s: inference failed on a batch of %d", self.name, len(items))
            for item in items:
                if not item.future.done():
                    item.future.set_exception(RuntimeError(f"inference failed: {exc}"))
            return
        seconds = time.perf_counter() - start
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
        self.observer.batch(len(items), seconds)
        for item, row in zip(items, out):
            if not item.future.done():
                item.future.set_result(row)
