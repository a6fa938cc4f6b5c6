"""When the development server tries a version again after it failed to load.

As TF Serving (max_num_load_retries 5, load_retry_interval_micros 1 min), a failed version is
retried `max_retries` times; here the waits double from `interval_s` (2, 4, 8, 16, 32 s by
default, at most `max_interval_s`), so that a version copied slowly is picked up soon and a
broken one stops costing loads after about a minute. A version directory that changed since its
last failed attempt (a copy still under way: saved_model.pb first, variables later) is tried again
as soon as it has stayed the same for one poll, with its retries counted afresh, also after they
ran out:

  retries = LoadRetries(fingerprint=lambda version: ..., max_retries=5, interval_s=2.0)
  if retries.should_try(7):
      before = retries.fingerprint(7)
      try: load(7); retries.forget(7)
      except Exception: wait = retries.failed(7, before)   # seconds to the next try, None: gave up
"""

import dataclasses
import math
import os
import time
from typing import Callable, Dict, Hashable, Optional

import tensorflow as tf

from serving.flags import DEFAULT_LOAD_RETRY_INTERVAL_S as DEFAULT_INTERVAL_S  # 2 s (TF Serving: 60 s)
from serving.flags import DEFAULT_MAX_LOAD_RETRIES as DEFAULT_MAX_RETRIES  # 5, as TF Serving

MAX_INTERVAL_S = 60.0  # TF Serving's interval: the longest wait between two attempts


@dataclasses.dataclass
class _Failed:
    attempts: int
    fingerprint: Hashable        # the directory when the last attempt started
    next_try: float              # clock time
    last_seen: Hashable          # the directory at the last poll


class LoadRetries:
    """Per version: failed attempts, the next time to try, and the directory's last fingerprint."""

    def __init__(self, fingerprint: Callable[[int], Hashable], max_retries: int = DEFAULT_MAX_RETRIES,
                 interval_s: float = DEFAULT_INTERVAL_S, max_interval_s: float = MAX_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if not (math.isfinite(interval_s) and interval_s > 0 and math.isfinite(max_interval_s)):
            raise ValueError(f"interval_s must be a positive number of seconds, got {interval_s!r}")
        self.fingerprint, self.max_retries, self.interval_s = fingerprint, max_retries, float(interval_s)
        self.max_interval_s, self._clock = max(float(max_interval_s), self.interval_s), clock
        self._failed: Dict[int, _Failed] = {}

    def should_try(self, version: int) -> bool:
        """True if `version` was never tried, its wait is over, or its directory changed and settled."""
        failed = self._failed.get(version)
        if failed is None:
            return True
        try:
            now = self.fingerprint(version)
        except tf.errors.OpError:
            return False  # being deleted or unreadable: not now
        if now != failed.fingerprint:
            settled, failed.last_seen = now == failed.last_seen, now
            if settled:
                del self._failed[version]
            return settled
        return failed.attempts <= self.max_retries and self._clock() >= failed.next_try

    def failed(self, version: int, fingerprint: Hashable) -> Optional[float]:
        """Records a failed attempt (fingerprint: the directory before it); seconds until the next
        one, or None when the retries have run out (until the directory changes)."""
        previous = self._failed.get(version)
        attempts = 1 if previous is None else previous.attempts + 1
        wait = min(self.interval_s * 2 ** (attempts - 1), self.max_interval_s)
        self._failed[version] = _Failed(attempts, fingerprint, self._clock() + wait, fingerprint)
        return wait if attempts <= self.max_retries else None

    def attempts(self, version: int) -> int:
        failed = self._failed.get(version)
        return failed.attempts if failed else 0

    def forget(self, version: int) -> None:
        self._failed.pop(version, None)


def directory_fingerprint(path: str) -> tuple:
    """(relative path, size, modification time) of every file under path, sorted: it changes while
    a copy is under way (local directories and gs:// alike)."""
    entries = []
    for directory, _, files in tf.io.gfile.walk(path):
        for name in files:
            full = os.path.join(directory, name)
            stat = tf.io.gfile.stat(full)
            entries.append((os.path.relpath(full, path), stat.length, stat.mtime_nsec))
    return tuple(sorted(entries))
