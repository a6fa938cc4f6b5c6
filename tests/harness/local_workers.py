"""A multi-worker job on one machine: N Python processes on localhost, each with its TF_CONFIG.

What Vertex AI Training or Kubeflow's TFJob do across machines (models/distribute.py), for tests and
local trials of MultiWorkerMirroredStrategy:

    results = local_workers.run_workers(train_tiny, count=2, args=(0.1,), timeout=120)
    results[0].value, results[1].value   # what train_tiny(0.1) returned in worker 0 and worker 1

`function` is a module-level function (given as the function itself, or as "package.module:function");
each worker imports its module (from the module's file when given the function; a script's
`if __name__ == "__main__"` part does not run), calls it with `args` and sends back what it returned,
as JSON (lists, dicts, numbers, strings). The function must create its MultiWorkerMirroredStrategy
before any other TensorFlow op (models/distribute.py, caveat). A worker cannot start workers itself.

Ports: free ones, found by binding port 0 on 127.0.0.1 and closing the socket; another process
could take one before the worker binds it (rare: the job then fails, run it again).

gRPC on localhost: TensorFlow's workers talk gRPC to the addresses of TF_CONFIG, and gRPC obeys the
proxy variables (https_proxy, http_proxy, grpc_proxy) unless the address is listed in no_grpc_proxy
(or, without it, no_proxy). The workers' environment gets 127.0.0.1 and localhost added there, so a
proxy set for other traffic (the tests' storage emulator sets https_proxy) is not asked to reach the
other worker (verified: without it, two workers with https_proxy set waited for each other until the
timeout).

Speed, on a 2-core machine: a worker spends ~7 s importing TensorFlow before its function runs.
tf_keras's model.fit traces its first step for 12-30 s more, because AutoGraph converts all of
tf_keras (TF 2.16 lists `keras`, not `tf_keras`, among the packages it leaves alone); the worker of
tests/models/test_distribute.py adds that rule: its whole two-worker test takes ~9 s instead of ~38 s.

Failure: when one worker fails, the others would wait for it in their next collective op (until
gRPC's or the coordination service's timeouts, minutes): every other worker is killed at once, and
at the timeout all are. Each worker's stdout and stderr are kept (in files: a pipe that fills up
would block the worker) and come back in the results. TensorFlow's C++ log is off in this project
(models/foundation/env.py): pass env={"TF_CPP_MIN_LOG_LEVEL": "0"} to see gRPC's and the collectives' lines.
"""

import dataclasses
import importlib
import importlib.util
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

RESULT_FILE = "LOCAL_WORKER_RESULT"  # environment variable: where a worker writes its return value
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository: models/, tests/


@dataclasses.dataclass(frozen=True)
class WorkerResult:
    index: int  # the worker's task index in TF_CONFIG
    returncode: Optional[int]  # None: killed (timeout, or another worker failed)
    value: Any  # what the function returned (None when it failed)
    stdout: str
    stderr: str
    seconds: float  # wall time from the start of all workers to this one's end

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class WorkersFailed(RuntimeError):
    """A worker exited with an error, or the job ran past its timeout; `results` says how each ended."""

    def __init__(self, message: str, results: List[WorkerResult]):
        super().__init__(message)
        self.results = results


def free_ports(count: int) -> List[int]:
    """count distinct free TCP ports of 127.0.0.1 (bound to port 0 together, then released)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def cluster_configs(ports: Sequence[int]) -> List[Dict[str, Any]]:
    """One TF_CONFIG per worker of a cluster of workers on 127.0.0.1 (no chief: worker 0 is chief)."""
    workers = [f"127.0.0.1:{port}" for port in ports]
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            for index in range(len(workers))]


def run_workers(function: Union[Callable, str], count: int = 2, args: Sequence = (), timeout: float = 120.0,
                env: Optional[Dict[str, str]] = None, check: bool = True) -> List[WorkerResult]:
    """Runs function(*args) in `count` worker processes of one TF_CONFIG cluster on localhost and
    returns their results in task order. The workers inherit this process's environment (plus `env`)
    and working directory, and run this Python interpreter.

    With check (the default), raises WorkersFailed when a worker failed or the timeout passed, its
    message holding the end of each failed worker's stderr.
    """
    if os.environ.get(RESULT_FILE):
        raise RuntimeError("run_workers called inside a local worker: it would start workers without end")
    if isinstance(function, str):
        target, source = function, ""
    else:  # the module's file too: a test module's package name may not import in the worker (below)
        target, source = f"{function.__module__}:{function.__qualname__}", inspect.getfile(function)
    json.dumps(list(args))  # fails here, not in the workers, when the arguments are not JSON
    scratch = tempfile.mkdtemp(prefix="local-workers-")
    base = {**os.environ, **(env or {})}
    # The workers import this package (and functions of tests/) from this checkout, wherever they start.
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, base.get("PYTHONPATH")]))
    bypass = ",".join(filter(None, [base.get("no_grpc_proxy") or base.get("no_proxy"), "127.0.0.1,localhost"]))
    processes = []
    started = time.monotonic()
    try:
        for index, config in enumerate(cluster_configs(free_ports(count))):
            worker_env = {**base, "TF_CONFIG": json.dumps(config), "no_grpc_proxy": bypass,
                          RESULT_FILE: os.path.join(scratch, f"result-{index}.json")}
            with open(os.path.join(scratch, f"stdout-{index}"), "wb") as out, \
                    open(os.path.join(scratch, f"stderr-{index}"), "wb") as err:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", __name__, target, source, json.dumps(list(args))], env=worker_env,
                    stdout=out, stderr=err, start_new_session=True))  # its own group: killed with its children
        ended = _wait(processes, started, timeout)
        results = [_result(index, processes[index], ended.get(index), scratch) for index in range(count)]
    finally:
        for process in processes:
            _kill(process)
        _remove(scratch)
    if check and not all(result.ok for result in results):
        failed = [r for r in results if not r.ok]
        timed_out = all(r.returncode in (0, None) for r in results)  # nobody failed: the timeout ended it
        lines = [f"local workers: {'timeout after %.0f s' % timeout if timed_out else 'a worker failed'}; "
                 + ", ".join(f"worker {r.index}: {'killed' if r.returncode is None else 'exit %d' % r.returncode}"
                             for r in failed)]
        for r in failed:
            lines.append(f"--- worker {r.index} stderr (end) ---\n{r.stderr[-3000:]}")
        raise WorkersFailed("\n".join(lines), results)
    return results


def _wait(processes, started: float, timeout: float) -> Dict[int, float]:
    """Polls until all exited, one failed (the others are killed) or the timeout (all killed).
    Returns {index: seconds since start} of the workers that exited on their own."""
    ended = {}
    while len(ended) < len(processes):
        for index, process in enumerate(processes):
            if index not in ended and process.poll() is not None:
                ended[index] = time.monotonic() - started
                if process.returncode != 0:
                    return ended  # the others are killed by the caller's `finally`
        if time.monotonic() > started + timeout:
            return ended
        time.sleep(0.05)
    return ended


def _result(index: int, process, seconds: Optional[float], scratch: str) -> WorkerResult:
    _kill(process)  # a worker still running (timeout, or another failed) ends here; its output is complete
    value = None
    if seconds is not None and process.returncode == 0:
        with open(os.path.join(scratch, f"result-{index}.json")) as file:
            value = json.load(file)
    return WorkerResult(index=index, returncode=process.returncode if seconds is not None else None, value=value,
                        stdout=_read(os.path.join(scratch, f"stdout-{index}")),
                        stderr=_read(os.path.join(scratch, f"stderr-{index}")),
                        seconds=round(seconds if seconds is not None else float("nan"), 1))


def _kill(process) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the worker's own process group (start_new_session)
        except ProcessLookupError:
            pass
        process.wait()


def _read(path: str) -> str:
    with open(path, "rb") as file:
        return file.read().decode("utf-8", errors="replace")


def _remove(directory: str) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


def _worker_main(target: str, source: str, args_json: str) -> None:
    """In a worker: imports target's module (from its file when given), calls the function, writes its
    return value as JSON.

    From the file: `tests` is a namespace package here, and importing Apache Beam (models/foundation/env.py
    does when a storage emulator is set) puts IPython's extensions directory, which holds a regular
    `tests` package, on sys.path: "tests.models..." would then not import by name.
    """
    module_name, _, qualname = target.partition(":")
    if module_name == "__main__":  # a script's function: its `if __name__ == "__main__"` part must not run
        module_name = "__worker_main__"  # (as multiprocessing's "__mp_main__")
    if source:
        spec = importlib.util.spec_from_file_location(module_name, source)
        function = sys.modules[module_name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(function)
    else:
        function = importlib.import_module(module_name)
    for part in qualname.split("."):
        function = getattr(function, part)
    value = function(*json.loads(args_json))
    with open(os.environ[RESULT_FILE], "w") as file:
        json.dump(value, file)
    sys.stdout.flush()
    sys.stderr.flush()


if __name__ == "__main__":
    _worker_main(*sys.argv[1:4])
