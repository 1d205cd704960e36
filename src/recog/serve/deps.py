"""What every route depends on: the service state, API keys, the request deadline, admission.

- :func:`state_of`: the app's :class:`~recog.serve.app.ServiceState`.
- :func:`require_key`, :func:`require_admin_key`: API key checks (see :mod:`recog.serve.auth`).
- :func:`require_faces_key`, :func:`require_write_key`: biometric and write routes: a key even
  on loopback; without a key file they are refused (403), faces unless ``allow_open_faces``.
  A new router whose routes change stored state (an index, a gallery) puts
  ``Depends(require_write_key)`` in its ``dependencies``.
- :func:`request_deadline`: when the request must be answered: the server's
  ``request_timeout_s`` from its arrival, or less when the client sends
  ``X-Request-Timeout: SECONDS`` (a tighter budget; never more than the server's).
- :func:`load_once`: a heavy object (an explainer, an index's model) built once per key in a
  thread; requests that arrive while it builds wait for that build until their deadline.
- :class:`Admission`: the one admission policy of the service. Each queue
  (every model's batcher, the faces routes) admits at most ``max_queue``
  images in progress; a request that would pass it is refused at once with 429
  and a ``Retry-After`` estimate, never queued without bound.

Example:
    >>> @router.post("/x")                                                   # doctest: +SKIP
    ... async def x(request: Request, deadline: Deadline = Depends(request_deadline)):
    ...     with admission.slots(1):
    ...         return await deadline.run(state_of(request).executor, work, "while working")
"""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, MutableMapping

from fastapi import Request

from recog.errors import BadRequestError, DeadlineExceededError, ForbiddenError, NotReadyError, OverloadedError
from recog.serve.auth import presented_key, require_admin

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from recog.serve.app import ServiceState

TIMEOUT_HEADER = "x-request-timeout"


def state_of(request: Request) -> "ServiceState":
    """The :class:`~recog.serve.app.ServiceState` of the app serving ``request``."""
    return request.app.state.recog


def require_key(request: Request) -> None:
    """Dependency: a valid API key when the service has a key file; nothing otherwise."""
    keys = state_of(request).keys
    if keys is not None:
        keys.check(presented_key(request.headers))


def _require_key_always(request: Request, what: str, *, open_flag: str | None = None) -> None:
    st = state_of(request)
    if st.keys is not None:
        st.keys.check(presented_key(request.headers))
        return
    if open_flag is not None and getattr(st.settings, open_flag):
        return
    hint = "start the service with --api-keys FILE (make a key with `recog api-key add FILE --name NAME`)"
    if open_flag is not None:
        hint += f", or with --{open_flag.replace('_', '-')} to open them on purpose on a single-user machine"
    raise ForbiddenError(f"{what} need an API key, and this service runs without keys.", hint=hint)


def require_faces_key(request: Request) -> None:
    """Dependency of the face routes (biometric data): a valid key; with no key file, 403 unless
    the operator passed ``--allow-open-faces``."""
    _require_key_always(request, "the face recognition routes (biometric data)", open_flag="allow_open_faces")


def require_write_key(request: Request) -> None:
    """Dependency of routes that change stored state: a valid key; with no key file, 403."""
    _require_key_always(request, "routes that change stored data")


def require_admin_key(request: Request) -> None:
    """Dependency: an admin API key (admin operations are off without a key file)."""
    require_admin(state_of(request).keys, request.headers)


@dataclass(frozen=True)
class Deadline:
    """When a request must be answered.

    Attributes:
        seconds: the request's budget.
        at: ``time.monotonic()`` by which it must be done.
    """

    seconds: float
    at: float

    def left(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self.at - time.monotonic())

    async def wait(self, awaitable: Awaitable[Any], doing: str, *, hint: str | None = None) -> Any:
        """Await ``awaitable`` until the deadline.

        Raises:
            DeadlineExceededError: it passed first (504); the message says what the request was ``doing``.
        """
        try:
            return await asyncio.wait_for(awaitable, self.left())
        except asyncio.TimeoutError:
            raise DeadlineExceededError(f"the request passed its {self.seconds:g} s deadline {doing}.",
                                        hint=hint) from None

    async def run(self, executor: "Executor | None", fn: Callable[[], Any], doing: str, *,
                  hint: str | None = None) -> Any:
        """Run the blocking ``fn`` on ``executor`` (off the event loop) until the deadline."""
        return await self.wait(asyncio.get_running_loop().run_in_executor(executor, fn), doing, hint=hint)


def request_timeout(request: Request, server_timeout: float) -> float:
    """Seconds this request may take: the ``X-Request-Timeout`` header if given, never more than the server's.

    Raises:
        BadRequestError: the header is not a positive number.
    """
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is None:
        return server_timeout
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0):
        raise BadRequestError(f"{TIMEOUT_HEADER} must be a positive number of seconds, got {raw!r}.")
    return min(value, server_timeout)


def request_deadline(request: Request) -> Deadline:
    """Dependency: the request's :class:`Deadline`, counted from its arrival."""
    seconds = request_timeout(request, state_of(request).settings.request_timeout_s)
    return Deadline(seconds, time.monotonic() + seconds)


async def load_once(cache: MutableMapping[Any, "asyncio.Task"], key: Any, load: Callable[[], Any],
                    deadline: Deadline, what: str) -> Any:
    """``load()`` run once per ``key`` in a thread; later calls wait for that run (a failed run is retried).

    Raises:
        NotReadyError: the deadline passed while ``what`` was still loading (503, Retry-After).
    """
    task = cache.get(key)
    if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
        task = asyncio.create_task(asyncio.to_thread(load))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        cache[key] = task
    try:
        return await asyncio.wait_for(asyncio.shield(task), deadline.left())
    except asyncio.TimeoutError:
        raise NotReadyError(f"{what} is still loading.", hint="retry after the Retry-After delay") from None


class Admission:
    """At most ``limit`` images in progress in one queue; more are refused at once (429 + Retry-After).

    Args:
        what: the queue, for messages ("model pets").
        limit: images admitted at once (``max_queue``).
        retry_after: images in progress -> seconds a refused client should wait.
        on_reject: called once per refusal (metrics).

    Example:
        >>> admission = Admission("face recognition", limit=256)
        >>> with admission.slots(2):
        ...     admission.admitted
        2
    """

    def __init__(self, what: str, limit: int, *, retry_after: Callable[[int], float] = lambda admitted: 1.0,
                 on_reject: Callable[[], None] | None = None) -> None:
        self.what = what
        self.limit = max(1, int(limit))
        self.retry_after = retry_after
        self.on_reject = on_reject
        self._admitted = 0
        self._lock = threading.Lock()

    @property
    def admitted(self) -> int:
        """Images admitted and not yet released."""
        return self._admitted

    def admit(self, n: int) -> None:
        """Take ``n`` slots or fail at once.

        Raises:
            OverloadedError: the queue cannot take ``n`` more images (429, with a Retry-After estimate).
        """
        with self._lock:
            if self._admitted + n > self.limit:
                admitted = self._admitted
            else:
                self._admitted += n
                return
        if self.on_reject is not None:
            self.on_reject()
        raise OverloadedError(f"{self.what} is at capacity: {admitted} images queued (limit {self.limit}).",
                              retry_after=self.retry_after(admitted), hint="retry after the Retry-After delay")

    def release(self, n: int) -> None:
        """Give back ``n`` slots taken by :meth:`admit`."""
        with self._lock:
            self._admitted -= n

    @contextmanager
    def slots(self, n: int) -> Iterator[None]:
        """``n`` slots for the duration of the block."""
        self.admit(n)
        try:
            yield
        finally:
            self.release(n)
