"""The dynamic batcher on its own, fed with plain callables instead of a model."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from recog.serve.batching import DynamicBatcher
from recog.errors import DeadlineExceededError, NotReadyError, OverloadedError

pytestmark = pytest.mark.anyio


class Recorder:
    """infer callable that records batch sizes and can be held at a gate."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.gate.wait(10)
        self.sizes.append(len(x))
        return x.reshape(len(x), -1).sum(axis=1, keepdims=True)


async def _one(b: DynamicBatcher, value: float, deadline: float | None = None) -> float:
    with b.admit(1) as ticket:
        (row,) = await b.run(ticket, [np.full((2,), value, np.float32)], deadline=deadline)
    return float(row[0])


async def test_results_match_requests_and_batches_form_under_load():
    rec = Recorder()
    b = DynamicBatcher(rec, max_batch_size=4, max_delay_ms=20)
    await b.start()
    try:
        out = await asyncio.gather(*(_one(b, float(i)) for i in range(10)))
        assert out == [2.0 * i for i in range(10)]
        assert sum(rec.sizes) == 10 and max(rec.sizes) == 4 and len(rec.sizes) <= 4
        assert b.depth == 0
    finally:
        await b.close()


async def test_batching_off_runs_one_at_a_time():
    rec = Recorder()
    b = DynamicBatcher(rec, max_batch_size=1)
    await b.start()
    try:
        await asyncio.gather(*(_one(b, 1.0) for i in range(5)))
        assert rec.sizes == [1] * 5
    finally:
        await b.close()


async def test_lone_request_does_not_wait_for_company():
    rec = Recorder()
    b = DynamicBatcher(rec, max_batch_size=16, max_delay_ms=5000)
    await b.start()
    try:
        # nothing else is admitted, so the batch runs at once instead of waiting 5 s for company
        await asyncio.wait_for(_one(b, 3.0), timeout=2.0)
        assert rec.sizes == [1]
    finally:
        await b.close()


async def test_full_queue_rejects_at_once_and_recovers():
    rec = Recorder()
    b = DynamicBatcher(rec, max_batch_size=2, max_queue=3)
    await b.start()
    try:
        held = b.admit(3)
        with pytest.raises(OverloadedError) as err:
            b.admit(1)
        assert err.value.http_status == 429 and err.value.retry_after > 0
        held.release()
        assert await _one(b, 1.0) == 2.0
    finally:
        await b.close()


async def test_deadline_frees_the_slot_and_skips_the_work():
    rec = Recorder()
    rec.gate.clear()  # the first batch blocks inside infer
    b = DynamicBatcher(rec, max_batch_size=1, max_queue=2)
    await b.start()
    try:
        first = asyncio.create_task(_one(b, 1.0))
        await asyncio.to_thread(rec.entered.wait, 10)
        with pytest.raises(DeadlineExceededError) as err:
            await _one(b, 2.0, deadline=time.monotonic() + 0.05)
        assert err.value.http_status == 504
        assert b.depth == 1  # only the blocked request holds a slot now
        rec.gate.set()
        assert await first == 2.0
        assert await _one(b, 4.0) == 8.0
        assert rec.sizes == [1, 1]  # the expired item never reached infer
    finally:
        await b.close()


async def test_failing_infer_fails_its_requests_not_the_worker():
    calls = []

    def flaky(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return x[:, :1]

    b = DynamicBatcher(flaky, max_batch_size=1)
    await b.start()
    try:
        with pytest.raises(RuntimeError):
            await _one(b, 1.0)
        assert await _one(b, 5.0) == 5.0
    finally:
        await b.close()


async def test_close_drains_admitted_work_then_refuses():
    rec = Recorder()
    b = DynamicBatcher(rec, max_batch_size=4)
    await b.start()
    pending = [asyncio.create_task(_one(b, float(i))) for i in range(6)]
    await asyncio.sleep(0)  # let the tasks admit themselves
    await b.close(timeout=10)
    assert [await p for p in pending] == [2.0 * i for i in range(6)]
    with pytest.raises(NotReadyError):
        b.admit(1)


async def test_two_heads_share_the_queue_and_batch_separately():
    """run(..., infer=other) sends items to another callable of the same model; a gathered batch is split
    by callable, each part one call, in one queue with one admission limit."""
    rec, other = Recorder(), Recorder()
    b = DynamicBatcher(rec, max_batch_size=8, max_delay_ms=50, max_queue=6)

    async def one(value: float, infer=None) -> float:
        with b.admit(1) as ticket:
            (row,) = await b.run(ticket, [np.full((2,), value, np.float32)], infer=infer)
        return float(row[0])

    await b.start()
    try:
        out = await asyncio.gather(*(one(float(i), other if i % 2 else None) for i in range(6)))
        assert out == [2.0 * i for i in range(6)]
        assert sum(rec.sizes) == 3 and sum(other.sizes) == 3 and len(rec.sizes) + len(other.sizes) <= 4
        held = b.admit(6)
        with pytest.raises(OverloadedError):  # both heads count against the one limit
            await one(1.0, other)
        held.release()
    finally:
        await b.close()
