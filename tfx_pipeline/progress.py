"""Component progress lines and wall times, read from the TFX orchestrator's log records.

LocalDagRunner logs "Component X is running." and "Component X is finished." around every node
and the launcher logs "A cached execution N is used." when the cache answers and "Execution N
failed." when the component raised; a logging handler
turns those into one printed line per component and a dict of wall times. Everything TFX, Beam
and TensorFlow log goes to the run's log file instead of the terminal.
"""

import logging
import sys
import time
from typing import Callable, Dict, Optional

from absl import logging as absl_logging

_RUNNING = "Component %s is running."
_FINISHED = "Component %s is finished."
_CACHED = "A cached execution %d is used."
_FAILED = "Execution %d failed."


class ComponentProgress(logging.Handler):
    def __init__(self, write: Callable[[str], None]):
        super().__init__(level=logging.INFO)
        self._write = write
        self._started: Dict[str, float] = {}
        self._cached: Dict[str, bool] = {}
        self._current: Optional[str] = None
        self.wall_seconds: Dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == _RUNNING:
            self._current = record.args[0]
            self._started[self._current] = time.monotonic()
            self._cached[self._current] = False
            self._write(f"[{self._current}] running")
        elif record.msg == _CACHED and self._current is not None:
            self._cached[self._current] = True
        elif record.msg == _FAILED and self._current is not None:
            seconds = time.monotonic() - self._started[self._current]
            self._write(f"[{self._current}] failed after {seconds:.1f} s")
        elif record.msg == _FINISHED:
            name = record.args[0]
            seconds = time.monotonic() - self._started.get(name, time.monotonic())
            self.wall_seconds[name] = round(seconds, 2)
            note = " (cached)" if self._cached.get(name) else ""
            self._write(f"[{name}] finished in {seconds:.1f} s{note}")
            self._current = None

    @property
    def running(self) -> Optional[str]:
        """The component that started and has not finished (the one that failed, after an error)."""
        return self._current


class RunLogging:
    """Context manager: progress lines on stdout, every log record in `log_path`."""

    def __init__(self, log_path: str, write: Callable[[str], None] = None):
        self.progress = ComponentProgress(write or (lambda line: print(line, flush=True)))
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
        return self.progress

    def __exit__(self, *exc) -> None:
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
