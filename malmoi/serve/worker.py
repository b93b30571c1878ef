"""One inference thread per model behind a bounded queue: the event loop never runs a model.

Classify requests that arrive within ``max_wait_ms`` of each other are gathered (up to
``max_batch`` texts) and run as one batch, sorted by length so that each forward pass pads
little; every request gets exactly its own rows back. Other calls run one at a time, in order.
Streams advance one piece per turn, round-robin with each other and with new requests, so a
long generation does not hold the model for everyone else.

All workers of a process share one compute lock and torch's fixed thread count, so that
concurrent requests never run more forward passes at once than there are cores for.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from malmoi.errors import MalmoiError

COMPUTE = threading.Lock()
"""Held while any model of this process computes (one batch, one stream step)."""


@dataclass(eq=False)
class Job:
    kind: str
    """``classify`` (texts, batched), ``call`` (a function run alone) or ``stream`` (an iterator of pieces)."""
    payload: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future | None = None
    pieces: asyncio.Queue | None = None
    size: int = 1
    enqueued: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def deliver(self, result: Any = None, error: BaseException | None = None) -> None:
        """Hand a result (or an error) to the waiting request on its event loop."""
        def settle():
            if self.future is not None and not self.future.done():
                if error is not None:
                    self.future.set_exception(error)
                else:
                    self.future.set_result(result)
        self.loop.call_soon_threadsafe(settle)

    def push(self, kind: str, value: Any = None) -> None:
        """One stream event (``piece``, ``end`` with the finish reason, or ``error``) for the request."""
        self.loop.call_soon_threadsafe(self.pieces.put_nowait, (kind, value))


class ModelWorker:
    """The thread that runs one served model's work."""

    def __init__(self, served, settings, metrics=None):
        self.served, self.settings, self.metrics = served, settings, metrics
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=settings.queue_size)
        self.pending: deque[Job] = deque()  # pulled while gathering a batch, run next
        self.streams: list[tuple[Job, Iterator[str]]] = []
        self.thread = threading.Thread(target=self._run, name=f"malmoi-{served.name}", daemon=True)
        self.stopping = False
        self.last_batch = 0  # requests in the last classify batch: >1 means clients are concurrent
        self.thread.start()

    # -- the request side (event loop)

    def submit(self, job: Job) -> Job:
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise MalmoiError("E607", f"model {self.served.name!r} has {self.settings.queue_size} requests waiting; "
                                      "try again shortly") from None
        if self.metrics:
            self.metrics.queue_depth.labels(self.served.name).set(self.queue.qsize())
        return job

    async def _wait(self, job: Job) -> Any:
        try:
            return await asyncio.wait_for(job.future, self.settings.timeout)
        except asyncio.TimeoutError:
            raise MalmoiError("E608", f"the request took longer than {self.settings.timeout:g} s") from None
        finally:
            job.cancelled.set()  # a request that gave up is skipped if it has not run yet

    async def classify(self, texts: list[str]) -> np.ndarray:
        """(len(texts), classes) probabilities, computed in a batch with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        return await self._wait(self.submit(Job("classify", texts, loop, loop.create_future(), size=len(texts))))

    async def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run on this model's thread, in turn."""
        loop = asyncio.get_running_loop()
        return await self._wait(self.submit(Job("call", fn, loop, loop.create_future())))

    def stream(self, start: Callable[[], Iterator[str]]) -> Job:
        """A stream job: ``start()`` makes the iterator on the model's thread; read ``job.pieces``."""
        return self.submit(Job("stream", start, asyncio.get_running_loop(), pieces=asyncio.Queue()))

    def stop(self) -> None:
        self.stopping = True
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        self.thread.join(timeout=5)

    # -- the model's thread

    def _run(self) -> None:
        while not self.stopping:
            job = self._next(block=not self.streams)
            if job is not None and not job.cancelled.is_set():
                self._started(job)
                if job.kind == "classify":
                    self._classify(self._gather(job))
                elif job.kind == "call":
                    self._call(job)
                else:
                    self._open(job)
            self._advance_streams()

    def _next(self, block: bool) -> Job | None:
        if self.pending:
            return self.pending.popleft()
        try:
            return self.queue.get(timeout=0.5) if block else self.queue.get_nowait()
        except queue.Empty:
            return None

    def _started(self, job: Job) -> None:
        if self.metrics:
            self.metrics.queue_seconds.labels(self.served.name).observe(time.perf_counter() - job.enqueued)
            self.metrics.queue_depth.labels(self.served.name).set(self.queue.qsize())

    def _gather(self, first: Job) -> list[Job]:
        """``first`` and the classify requests that arrive within ``max_wait_ms``, up to ``max_batch`` texts.

        A lone client never waits: the wait is spent only while others are waiting or the last
        batch found company, so batching costs nothing at one client and gathers under load."""
        batch, size = [first], first.size
        busy = self.queue.qsize() > 0 or self.last_batch > 1
        deadline = time.perf_counter() + (self.settings.max_wait_ms / 1000 if busy else 0)
        while size < self.settings.max_batch:
            left = deadline - time.perf_counter()
            try:
                job = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                break
            if job.cancelled.is_set():
                continue
            self._started(job)
            if job.kind != "classify":
                self.pending.append(job)
                break
            batch.append(job)
            size += job.size
        self.last_batch = len(batch)
        return batch

    def _classify(self, batch: list[Job]) -> None:
        from malmoi.use.classifier import predict_proba

        loaded = self.served.loaded
        texts = [t for job in batch for t in job.payload]
        try:
            with COMPUTE:
                probs = predict_proba(loaded.model, loaded.tokenizer, texts, max_length=loaded.max_length,
                                      batch_size=self.settings.max_batch)
        except BaseException as e:  # every waiting request hears of it
            for job in batch:
                job.deliver(error=e)
            return
        if self.metrics:
            self.metrics.batch_size.labels(self.served.name).observe(len(texts))
        start = 0
        for job in batch:
            job.deliver(probs[start : start + job.size])
            start += job.size

    def _call(self, job: Job) -> None:
        try:
            with COMPUTE:
                result = job.payload()
        except BaseException as e:
            job.deliver(error=e)
            return
        job.deliver(result)

    def _open(self, job: Job) -> None:
        try:
            with COMPUTE:
                self.streams.append((job, iter(job.payload())))
        except BaseException as e:
            job.push("error", e)

    def _advance_streams(self) -> None:
        """One piece of every open stream; a finished, failed or abandoned stream is closed."""
        for entry in list(self.streams):
            job, pieces = entry
            if job.cancelled.is_set():
                self._close(entry)
                continue
            try:
                with COMPUTE:
                    piece = next(pieces)
            except StopIteration as stop:  # a stream may return its finish reason
                job.push("end", stop.value or "eos")
                self._close(entry)
            except BaseException as e:
                job.push("error", e)
                self._close(entry)
            else:
                job.push("piece", piece)

    def _close(self, entry) -> None:
        self.streams.remove(entry)
        close = getattr(entry[1], "close", None)
        if close is not None:
            with COMPUTE:
                close()  # stops a generator mid-generation: no more tokens are computed
