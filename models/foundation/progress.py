"""Component progress lines, wall times and resources, read from the TFX orchestrator's log records.

LocalDagRunner logs "Component X is running." and "Component X is finished." around every node
and the launcher logs "A cached execution N is used." when the cache answers and "Execution N
failed." when the component raised; a logging handler
turns those into one printed line per component and a dict of wall times, CPU seconds and peak
resident memory. Everything TFX, Beam and TensorFlow log goes to the run's log file instead of the
terminal, except the lines components log with `report_progress`, which are printed too.

While a component runs, a daemon thread samples the resident memory of this process and its
children (Beam worker processes) every second and, when the component printed nothing for
`heartbeat_seconds`, prints "[X] still running: N s, M MiB resident".

Memory: a component's peak is the larger of the kernel's high-water mark of this process (reset at
the component's start through /proc/self/clear_refs, Linux only) and the largest sampled resident
set of the process tree (a sum over processes: pages they share are counted once per process).
"""

import logging
import os
import resource
import sys
import threading
import time
from typing import Callable, Dict, Optional

from absl import logging as absl_logging

try:
    import psutil
except ImportError:  # the /proc fallback below reads the same numbers on Linux
    psutil = None

# The logger whose INFO lines a run prints: training code in models/ and components/ logs to it
# through `report_progress` (Beam workers' lines stay in their own processes).
PROGRESS_LOGGER = "recdistill.progress"
HEARTBEAT_LOGGER = "recdistill.heartbeat"  # heartbeat lines, for the log file (printed directly)
UNNAMED = "recdistill"  # the prefix of progress lines logged while no component runs

_RUNNING = "Component %s is running."
_FINISHED = "Component %s is finished."
_CACHED = "A cached execution %d is used."
_FAILED = "Execution %d failed."
_MIB = 1024 * 1024


def report_progress(message: str) -> None:
    """Prints "[<running component>] <message>" on the console of `recdistill run` (and logs it).

    For long loops in component code (epochs, scoring batches): one line every few seconds at most.
    Lines logged in Beam worker processes (`direct_running_mode=multi_processing`) are not printed:
    only this process's log records reach the console.
    """
    logging.getLogger(PROGRESS_LOGGER).info(message)


class ResourceProbe:
    """CPU seconds and resident memory of this process and its children (Linux /proc; psutil when installed)."""

    def cpu_seconds(self) -> float:
        """User + system seconds of this process and its children that have been waited for."""
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def tree_rss_mib(self) -> Optional[float]:
        """Resident MiB of this process plus every descendant (None where neither psutil nor /proc answers)."""
        return process_tree_rss_mib(os.getpid())

    def reset_peak(self) -> bool:
        """Resets the kernel's high-water mark of this process's resident set; False where it cannot."""
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def self_peak_mib(self) -> Optional[float]:
        """VmHWM of this process: its largest resident set since the last reset, MiB (None off Linux)."""
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            return None
        return None


class ComponentProgress(logging.Handler):
    """Prints component lines, measures each component, and prints heartbeats from a daemon thread.

    After the run: `wall_seconds` {component: s}, `resources` {component: {"cpu_seconds",
    "peak_rss_mib"}}, `peak_rss_mib` (the run's). `tick()` is one heartbeat step, for tests.
    """

    def __init__(self, write: Callable[[str], None], heartbeat_seconds: float = 30.0, sample_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, probe: Optional[ResourceProbe] = None):
        super().__init__(level=logging.INFO)
        # -- settings --
        self._write = write
        self._heartbeat_seconds = heartbeat_seconds
        self._sample_seconds = min(sample_seconds, heartbeat_seconds)
        self._clock = clock
        self._probe = probe or ResourceProbe()
        # -- the running component --
        self._current: Optional[str] = None
        self._failed = False
        self._started: Dict[str, float] = {}
        self._cached: Dict[str, bool] = {}
        self._last_line = 0.0          # when the running component last printed a line
        self._cpu_start = 0.0
        self._peak_reset = False       # True when VmHWM was reset at the component's start
        self._sampled_peak: Optional[float] = None
        self._rss: Optional[float] = None  # the latest sample
        self._generation = 0           # counts starts and finishes: a sample taken across one is dropped
        # -- results --
        self.wall_seconds: Dict[str, float] = {}
        self.resources: Dict[str, Dict[str, Optional[float]]] = {}
        self._run_peak: Optional[float] = None
        # -- heartbeat thread --
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == PROGRESS_LOGGER:
            self._line(f"[{self._current or UNNAMED}] {record.getMessage()}")
        elif record.msg == _RUNNING:
            self._start(record.args[0])
        elif record.msg == _CACHED and self._current is not None:
            self._cached[self._current] = True
        elif record.msg == _FAILED and self._current is not None:
            self._failed = True
            seconds = self._clock() - self._started[self._current]
            self._line(f"[{self._current}] failed after {seconds:.1f} s")
        elif record.msg == _FINISHED:
            self._finish(record.args[0])

    @property
    def running(self) -> Optional[str]:
        """The component that started and has not finished (the one that failed, after an error)."""
        return self._current

    @property
    def peak_rss_mib(self) -> Optional[float]:
        """The largest resident MiB seen during the run (this process's high-water marks and tree samples)."""
        with self.lock:
            self._fold_run_peak(self._probe.self_peak_mib())
            return None if self._run_peak is None else round(self._run_peak, 1)

    # -- component boundaries (called under the handler's lock) --

    def _start(self, name: str) -> None:
        self._fold_run_peak(self._probe.self_peak_mib())  # the peak since the last reset, before it is lost
        self._generation += 1
        self._current, self._failed = name, False
        self._started[name] = self._clock()
        self._cached[name] = False
        self._cpu_start = self._probe.cpu_seconds()
        self._peak_reset = self._probe.reset_peak()
        self._sampled_peak = None
        self._record_sample(self._probe.tree_rss_mib())
        self._line(f"[{name}] running")

    def _finish(self, name: str) -> None:
        now = self._clock()
        seconds = now - self._started.get(name, now)
        self.wall_seconds[name] = round(seconds, 2)
        if name == self._current:
            self._record_sample(self._probe.tree_rss_mib())
            own = self._probe.self_peak_mib() if self._peak_reset else None
            peaks = [p for p in (own, self._sampled_peak) if p is not None]
            peak = max(peaks) if peaks else None
            self._fold_run_peak(peak)
            self.resources[name] = {"cpu_seconds": round(self._probe.cpu_seconds() - self._cpu_start, 2),
                                    "peak_rss_mib": None if peak is None else round(peak, 1)}
        note = " (cached)" if self._cached.get(name) else ""
        self._write(f"[{name}] finished in {seconds:.1f} s{note}")
        self._generation += 1
        self._current = None

    def _line(self, line: str) -> None:
        self._write(line)
        self._last_line = self._clock()

    def _record_sample(self, rss: Optional[float]) -> None:
        if rss is None:
            return
        self._rss = rss
        self._fold_run_peak(rss)
        if self._current is not None:
            self._sampled_peak = rss if self._sampled_peak is None else max(self._sampled_peak, rss)

    def _fold_run_peak(self, mib: Optional[float]) -> None:
        if mib is not None and (self._run_peak is None or mib > self._run_peak):
            self._run_peak = mib

    # -- heartbeat --

    def tick(self) -> Optional[str]:
        """Samples memory and prints the heartbeat line when it is due; returns the line printed, if any."""
        with self.lock:
            generation = self._generation
        rss = self._probe.tree_rss_mib()  # outside the lock: psutil walks the process tree
        with self.lock:
            if generation != self._generation:  # a component started or finished meanwhile
                return None
            self._record_sample(rss)
            now = self._clock()
            if self._current is None or self._failed or now - self._last_line < self._heartbeat_seconds:
                return None
            resident = "-" if self._rss is None else f"{self._rss:.0f}"
            line = f"[{self._current}] still running: {now - self._started[self._current]:.0f} s, {resident} MiB resident"
            self._line(line)
        logging.getLogger(HEARTBEAT_LOGGER).info(line)
        return line

    def start_heartbeat(self) -> None:
        """Starts the daemon thread that calls `tick()` every `sample_seconds`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="recdistill-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        """Stops the thread and waits for it: nothing is printed after this returns."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None

    def _beat(self) -> None:
        while not self._stop.wait(self._sample_seconds):
            self.tick()


class RunLogging:
    """Context manager: progress lines on stdout, every log record in `log_path`, heartbeats while it lasts."""

    def __init__(self, log_path: str, write: Callable[[str], None] = None, heartbeat_seconds: float = 30.0):
        self.progress = ComponentProgress(write or (lambda line: print(line, flush=True)),
                                          heartbeat_seconds=heartbeat_seconds)
        self._file = logging.FileHandler(log_path, encoding="utf-8")
        self._file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._saved = None

    def __enter__(self) -> ComponentProgress:
        root = logging.getLogger()
        self._saved = (root.level, list(root.handlers), absl_logging.get_verbosity())
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.setLevel(logging.INFO)
        absl_logging.set_verbosity(absl_logging.INFO)
        logging.captureWarnings(True)
        root.addHandler(self._file)
        root.addHandler(self.progress)
        # absl writes to stderr through its own handler when one is installed: keep it quiet.
        absl_logging.get_absl_handler().setLevel(logging.CRITICAL)
        self.progress.start_heartbeat()
        return self.progress

    def __exit__(self, *exc) -> None:
        self.progress.stop_heartbeat()
        root = logging.getLogger()
        root.removeHandler(self._file)
        root.removeHandler(self.progress)
        self._file.close()
        level, handlers, verbosity = self._saved
        root.setLevel(level)
        for handler in handlers:
            root.addHandler(handler)
        absl_logging.set_verbosity(verbosity)
        logging.captureWarnings(False)
        sys.stdout.flush()


def process_tree_rss_mib(pid: int) -> Optional[float]:
    """Resident MiB of process `pid` plus every descendant (None where neither psutil nor /proc answers)."""
    if psutil is not None:
        return _psutil_tree_rss(pid) / _MIB
    try:
        return _proc_tree_rss(pid) / _MIB
    except OSError:
        return None


def _psutil_tree_rss(pid: int) -> int:
    """Bytes resident in process `pid` and its descendants (those that exit meanwhile count 0)."""
    try:
        root = psutil.Process(pid)
        processes = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def _proc_tree_rss(pid: int) -> int:
    """Bytes resident in process `pid` and its descendants, from /proc/<pid>/stat and statm."""
    children: Dict[int, list] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])  # the name in () may hold spaces
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    page, total, todo = os.sysconf("SC_PAGE_SIZE"), 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        todo += children.get(current, [])
    return total
