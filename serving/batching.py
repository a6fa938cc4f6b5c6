"""Request batching for the development server (serving/dev_server.py), as TF Serving's
--enable_batching does it: requests for the same model version and signature that arrive within
`timeout_s` of the first one are concatenated along the batch dimension (up to `max_batch_size`
rows), run once, and the outputs split back to each request.

  batcher = Batcher(max_batch_size=64, timeout_s=0.002)
  future = batcher.submit(key, run, {"user_id": [B] array, "history": [B, H] array})
  outputs = future.result()   # {"item_ids": [B, K], "scores": [B, K]}: this request's rows

`key` groups requests that may share a batch (the version's signature and the inputs' inner
shapes); `run` maps concatenated inputs to outputs whose first dimension is the batch.
When a batch of several requests fails, each of its requests is run again alone, so that an
error reaches only the request that causes it (the others get their answers, later).
Caveat: a request larger than max_batch_size runs alone rather than being refused or split
(TF Serving refuses it unless enable_large_batch_splitting is on); the server bounds its rows.
"""

import dataclasses
import threading
import time
from concurrent import futures
from typing import Callable, Dict, Hashable, List, Mapping, Optional

import numpy as np

Arrays = Dict[str, np.ndarray]


class BatcherStopped(RuntimeError):
    """submit() after stop(): the server is shutting down."""


@dataclasses.dataclass
class BatchStats:
    """Counters since the batcher started (read them with Batcher.stats(): a copy)."""
    batches: int = 0
    requests: int = 0
    rows: int = 0
    largest_batch_requests: int = 0
    batches_with_several_requests: int = 0
    failed_batches_rerun_alone: int = 0


@dataclasses.dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    rows: int
    future: futures.Future


@dataclasses.dataclass
class _OpenBatch:
    run: Callable[[Arrays], Mapping[str, np.ndarray]]
    deadline: float
    tasks: List[_Task] = dataclasses.field(default_factory=list)
    rows: int = 0


class Batcher:
    """Groups submitted requests into batches; `num_threads` batches run at once."""

    def __init__(self, max_batch_size: int = 64, timeout_s: float = 0.002, num_threads: int = 2):
        if max_batch_size < 1 or timeout_s < 0 or num_threads < 1:
            raise ValueError("max_batch_size and num_threads must be at least 1, timeout_s not negative")
        self.max_batch_size, self.timeout_s = int(max_batch_size), float(timeout_s)
        self._cond = threading.Condition()
        self._open: Dict[Hashable, _OpenBatch] = {}
        self._stats = BatchStats()
        self._stopped = False
        self._executor = futures.ThreadPoolExecutor(num_threads, thread_name_prefix="batch")
        self._thread = threading.Thread(target=self._close_due_batches, name="batcher", daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, run: Callable[[Arrays], Mapping[str, np.ndarray]],
               inputs: Mapping[str, np.ndarray]) -> futures.Future:
        """Queues one request (every input [rows, ...]); the future gives its own output rows."""
        rows = len(next(iter(inputs.values())))
        task = _Task(inputs, rows, futures.Future())
        with self._cond:
            if self._stopped:
                raise BatcherStopped("the batcher is stopped")
            if rows >= self.max_batch_size:
                self._dispatch(_OpenBatch(run, 0.0, [task], rows))
                return task.future
            batch = self._open.get(key)
            if batch is not None and batch.rows + rows > self.max_batch_size:
                self._dispatch(self._open.pop(key))
                batch = None
            if batch is None:
                batch = self._open[key] = _OpenBatch(run, time.monotonic() + self.timeout_s)
                self._cond.notify()  # a new deadline to wait for
            batch.tasks.append(task)
            batch.rows += rows
            if batch.rows == self.max_batch_size:
                self._dispatch(self._open.pop(key))
        return task.future

    def stats(self) -> BatchStats:
        with self._cond:
            return dataclasses.replace(self._stats)

    def stop(self) -> None:
        """Runs what is queued, waits for running batches, then refuses new requests."""
        with self._cond:
            self._stopped = True
            for key in list(self._open):
                self._dispatch(self._open.pop(key))
            self._cond.notify()
        self._thread.join()
        self._executor.shutdown(wait=True)

    # --- internals ---

    def _close_due_batches(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                for key in [key for key, batch in self._open.items() if batch.deadline <= now]:
                    self._dispatch(self._open.pop(key))
                deadline: Optional[float] = min((b.deadline for b in self._open.values()), default=None)
                self._cond.wait(None if deadline is None else max(deadline - now, 0.0))

    def _dispatch(self, batch: _OpenBatch) -> None:  # with self._cond held
        stats = self._stats
        stats.batches += 1
        stats.requests += len(batch.tasks)
        stats.rows += batch.rows
        stats.largest_batch_requests = max(stats.largest_batch_requests, len(batch.tasks))
        stats.batches_with_several_requests += len(batch.tasks) > 1
        self._executor.submit(self._run_batch, batch)

    def _run_batch(self, batch: _OpenBatch) -> None:
        tasks = [task for task in batch.tasks if task.future.set_running_or_notify_cancel()]
        if not tasks:
            return
        try:
            _finish(tasks, _run(batch.run, tasks))
        except Exception as error:  # noqa: BLE001
            if len(tasks) == 1:
                tasks[0].future.set_exception(error)
                return
            # One request's inputs can fail the whole batch (the server checks what it can before
            # batching, the model may still refuse something): each request runs again alone, so
            # that the error reaches only the request that causes it.
            with self._cond:
                self._stats.failed_batches_rerun_alone += 1
            for task in tasks:
                try:
                    _finish([task], _run(batch.run, [task]))
                except BaseException as alone:  # noqa: BLE001 (its waiting request gets the error)
                    task.future.set_exception(alone)
        except BaseException as error:  # noqa: BLE001 (every waiting request gets the error)
            for task in tasks:
                task.future.set_exception(error)


def _run(run: Callable[[Arrays], Mapping[str, np.ndarray]], tasks: List[_Task]) -> Mapping[str, np.ndarray]:
    """The tasks' inputs concatenated, run once; ValueError unless every output keeps the batch rows."""
    if len(tasks) == 1:
        inputs = dict(tasks[0].inputs)
    else:
        inputs = {name: np.concatenate([task.inputs[name] for task in tasks]) for name in tasks[0].inputs}
    outputs = run(inputs)
    rows = sum(task.rows for task in tasks)
    for name, value in outputs.items():
        if np.ndim(value) == 0 or len(value) != rows:
            raise ValueError(f"output {name!r} has shape {np.shape(value)}, not [{rows}, ...]: "
                             "a batched signature must keep the batch dimension first")
    return outputs


def _finish(tasks: List[_Task], outputs: Mapping[str, np.ndarray]) -> None:
    """Each task's own rows of the batch's outputs."""
    start = 0
    for task in tasks:
        task.future.set_result({name: value[start:start + task.rows] for name, value in outputs.items()})
        start += task.rows
