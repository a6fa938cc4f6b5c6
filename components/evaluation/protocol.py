"""What every model of the report is measured by: the training share removed from its rankings,
and report.json's M entry (metrics, params, sizes as deployed, latency)."""

import gzip
import posixpath
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from models.retrieval_metrics import RetrievalEvaluator
from models.foundation import storage

METRICS = ("recall@10", "ndcg@10", "recall@100", "precision@10")
LATENCY_CALLS = 50
TRAINING_SPLITS = ("train", "eval")  # the benchmark's training share: removed from every ranking
COLD_KEY = "cold"  # an entry's cold-item metrics, taken out into report.json's "cold_items"
PER_USER = "per_user_ndcg@10"  # an entry's per-user ndcg@10, taken out for the push gate (never written)
BEYOND_KEY = "beyond_accuracy"  # an entry's coverage, Gini, novelty, diversity, popular share (beyond.py)


def entry(evaluator: RetrievalEvaluator, score_fn: Callable, params: int, sizes: Tuple[int, int],
          per_user: bool = False, timed: Optional[Callable] = None) -> Dict:
    """report.json's M for score_fn(users [B]) -> scores [B, num_items]; sizes: (bytes, gzip_bytes).
    per_user: the entry also holds PER_USER (each test user's ndcg@10, for the push gate's paired
    comparison: taken out with take_per_user before the entry is written anywhere). timed: what the
    latency times, when score_fn does more than the model (default score_fn)."""
    metrics = evaluator.evaluate(score_fn, ks=(10, 100), per_user=per_user)
    result = {k: round(float(metrics[k]), 4) for k in METRICS}
    result.update(params=int(params), bytes=sizes[0], gzip_bytes=sizes[1],
                  latency_ms_p50=latency_ms(timed or score_fn))
    result["users"] = int(metrics["users"])
    return with_beyond(with_per_user(with_cold(result, metrics), metrics), metrics)


def with_beyond(result: Dict, metrics: Dict) -> Dict:
    """The entry with the beyond-accuracy figures the evaluator added, if any (components/evaluation/beyond.py)."""
    if BEYOND_KEY in metrics:
        result[BEYOND_KEY] = metrics[BEYOND_KEY]
    return result


def with_per_user(result: Dict, metrics: Dict) -> Dict:
    """The entry with each user's ndcg@10 when the evaluator gave it (evaluate(per_user=True))."""
    if "per_user" in metrics:
        result[PER_USER] = metrics["per_user"]["ndcg@10"]
    return result


def take_per_user(results: Dict[str, Optional[Dict]]) -> Dict[str, np.ndarray]:
    """Takes each entry's per-user ndcg@10 out of `results` (in place): {model: [U] array}."""
    return {name: entry.pop(PER_USER) for name, entry in results.items() if entry and PER_USER in entry}


def with_cold(result: Dict, metrics: Dict) -> Dict:
    """The entry with the cold-item metrics the evaluator added, if any (components/evaluation/cold.py)."""
    if COLD_KEY in metrics:
        result[COLD_KEY] = metrics[COLD_KEY]
    return result


def latency_ms(score_fn: Callable) -> float:
    """Median milliseconds of score_fn for one user (user 1), after one warm-up call."""
    user = np.array([1], np.int64)
    score_fn(user)  # the first call traces and warms up
    times = []
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        score_fn(user)
        times.append((time.perf_counter() - start) * 1000)
    return round(float(np.median(times)), 3)


def sizes(path: str, exclude: Optional[str] = None) -> Tuple[int, int]:
    """(bytes, gzip_bytes) of a file, or of every file under a directory (but its `exclude` subdirectory).

    Each file is read whole (local path or URI): its length is its size, so gs:// and a local
    copy give the same figures. A prefix match on the directory, as os.walk's `d.startswith` was."""
    if storage.isfile(path):
        files = [path]
    else:
        files = [storage.join(path, *relative.split("/")) for relative in storage.walk_files(path)
                 if not (exclude and posixpath.dirname(relative).startswith(exclude))]
    raw = zipped = 0
    for name in files:
        data = storage.read_bytes(name)
        raw += len(data)
        zipped += len(gzip.compress(data, 6))
    return raw, zipped
