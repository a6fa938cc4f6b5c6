"""The development server's log: loads, unloads, failed loads (serving/model_versions.py) and the
errors answered per status code each minute (ErrorCounts), to stderr and optionally a file.

  handlers = server_log.configure("serve.log")   # the "serving" loggers, with timestamps
  ...
  server_log.remove(handlers)                     # tests: back as before

Lines look like
  2026-12-04 05:01:02,345 INFO serving.model_versions: recdistill version 2 is available: ...
  2026-12-04 05:02:00,001 WARNING serving.server_log: errors answered in the last 60 s: INVALID_ARGUMENT 12, ...
"""

import collections
import logging
import sys
import threading
import time
from typing import Dict, List, Optional

import grpc

LOGGER = "serving"  # the parent of serving.dev_server, serving.model_versions, ...
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_log = logging.getLogger(__name__)


def configure(log_file: Optional[str] = None, stream=None, level: int = logging.INFO) -> List[logging.Handler]:
    """Sends the serving loggers' lines to `stream` (stderr) and, if given, appends them to
    log_file; returns the handlers added. OSError if log_file cannot be opened for appending."""
    handlers: List[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logger = logging.getLogger(LOGGER)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # the command line's root logger is silenced (library notices)
    return handlers


def remove(handlers: List[logging.Handler]) -> None:
    logger = logging.getLogger(LOGGER)
    for handler in handlers:
        logger.removeHandler(handler)
        handler.close()
    if not logger.handlers:
        logger.propagate = True


def _seconds(value: float) -> str:
    """"60" for a minute, "0.3" for a short interval (a server stopped soon after it started), not "0"."""
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


class ErrorCounts:
    """Errors answered, counted per status code; every `interval_s` seconds the counts of the
    interval are logged (when there were any) and started again."""

    def __init__(self, interval_s: float = 60.0):
        self.interval_s = interval_s
        self._since = time.monotonic()
        self._lock = threading.Lock()
        self._counts: Dict[grpc.StatusCode, int] = collections.Counter()
        self.totals: Dict[grpc.StatusCode, int] = collections.Counter()  # since the start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._report_periodically, name="error-counts", daemon=True)
        self._thread.start()

    def add(self, code: grpc.StatusCode) -> None:
        with self._lock:
            self._counts[code] += 1
            self.totals[code] += 1

    def report(self) -> Dict[grpc.StatusCode, int]:
        """Logs and resets the interval's counts; returns them."""
        with self._lock:
            counts, self._counts = dict(self._counts), collections.Counter()
            now, since, self._since = time.monotonic(), self._since, time.monotonic()
        if counts:
            listed = sorted((code.name, count) for code, count in counts.items())
            _log.warning("errors answered in the last %s s: %s", _seconds(now - since),
                         ", ".join(f"{name} {count}" for name, count in listed))
        return counts

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self.report()

    def _report_periodically(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.report()
