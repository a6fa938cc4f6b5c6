"""TeacherScorer's rows (components/teacher/scoring.py) as a tf.data stream for the students.

Training reads the scored TFRecord shards as a stream: the shards are read in file-name order (one
after the other when the buffer holds every row, else interleaved: one record from each in turn),
shuffled in a bounded buffer and parsed a batch at a time, so
the memory a student needs does not grow with the rows (the buffer holds serialized records, about
12 bytes per candidate). With a buffer at least as large as the split the shuffle is a uniform
permutation, as a full in-memory shuffle is; above it, the interleave mixes the shards' users.

One training element: user_index, item_index [B]; history [B, H] (the user's latest items with
the row's own item replaced by 0, so a row never sees its label); with teacher scores also
candidates [B, C] (0 pads) and teacher_scores [B, C] times `scale` (the soft labels' rescaling,
models/distillation.py).
"""

import dataclasses
import math
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from models.foundation import storage

SHUFFLE_BUFFER = 200_000  # rows; about 2.4 KB each at 1 + 2 x 50 candidates: 480 MB at most
MAX_INTERLEAVE = 64  # shards read at once


def spec():
    import tensorflow as tf

    return {
        "row": tf.io.FixedLenFeature([], tf.int64),
        "user_index": tf.io.FixedLenFeature([], tf.int64),
        "item_index": tf.io.FixedLenFeature([], tf.int64),
        "candidates": tf.io.VarLenFeature(tf.int64),
        "teacher_scores": tf.io.VarLenFeature(tf.float32),
    }


@dataclasses.dataclass(frozen=True)
class ScoredRows:
    """A scored split: its shard files (name order), row count, candidate width and the factor its
    teacher scores are multiplied by. Its real candidates' scores sum to `total` with `squares`
    over `real` of them (for the rescaling: `std`)."""

    files: Tuple[str, ...]
    rows: int
    width: int
    real: int = 0
    total: float = 0.0
    squares: float = 0.0
    scale: float = 1.0

    @property
    def std(self) -> float:
        if not self.real:
            return 0.0
        mean = self.total / self.real
        return math.sqrt(max(self.squares / self.real - mean * mean, 0.0))

    def scaled(self, factor: float) -> "ScoredRows":
        return dataclasses.replace(self, scale=float(factor))

    def dataset(self, latest: np.ndarray, batch_size: int, seed: int, teacher: bool = True,
                shuffle_buffer: int = SHUFFLE_BUFFER):
        """Shuffled batches (see the module's docstring); latest: [num_users, H]."""
        import tensorflow as tf

        latest = tf.constant(latest, tf.int64)
        width, scale = self.width, np.float32(self.scale)
        names = tf.data.Dataset.from_tensor_slices(list(self.files))
        # A buffer that holds every row shuffles uniformly whatever the order: the shards are read one
        # after the other (row order, as the rows were in memory before); a smaller one needs the mix.
        cycle = 1 if self.rows <= shuffle_buffer else max(1, min(len(self.files), MAX_INTERLEAVE))
        records = names.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                                   cycle_length=cycle, block_length=1)
        records = records.shuffle(max(1, min(self.rows, shuffle_buffer)), seed=seed, reshuffle_each_iteration=True)
        features = spec()

        def parse(batch):
            parsed = tf.io.parse_example(batch, features)
            user, item = parsed["user_index"], parsed["item_index"]
            history = tf.gather(latest, user)
            out = {"user_index": user, "item_index": item,
                   "history": tf.where(tf.equal(history, item[:, None]), tf.zeros_like(history), history)}
            if teacher:
                out["candidates"] = _dense(parsed["candidates"], width)
                out["teacher_scores"] = _dense(parsed["teacher_scores"], width) * scale
            return out

        data = records.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        options = tf.data.Options()
        # Every worker of a multi-worker strategy reads the stream and keeps its share of each batch.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return data.with_options(options).prefetch(2)


def _dense(sparse, width: int):
    import tensorflow as tf

    dense = tf.sparse.to_dense(sparse)
    return tf.pad(dense, [[0, 0], [0, width - tf.shape(dense)[1]]])


def shard_files(file_patterns: Sequence[str]) -> List[str]:
    """The data files the patterns match, in name order (dot-files and unfinished .tmp shards out)."""
    # storage.glob: the patterns may be gs:// (Trainer's train_files). Its "*" also matches dot-files.
    return sorted(f for pattern in file_patterns for f in storage.glob(pattern)
                  if not os.path.basename(f).startswith(".") and not f.endswith(".tmp"))


def open_rows(file_patterns: Sequence[str], stats: Dict = None) -> ScoredRows:
    """A scored split from its file patterns and, when the scorer wrote them, its statistics
    ({"rows", "width", "real", "sum", "sum_squares"}); without them one pass over the files counts."""
    files = tuple(shard_files(file_patterns))
    if not files:
        raise ValueError(f"no scored examples in {list(file_patterns)}")
    if stats is None:
        stats = _count(files)
    return ScoredRows(files, int(stats["rows"]), int(stats["width"]), int(stats["real"]), float(stats["sum"]),
                      float(stats["sum_squares"]))


def _count(files: Sequence[str]) -> Dict:
    import tensorflow as tf

    stats = {"rows": 0, "width": 0, "real": 0, "sum": 0.0, "sum_squares": 0.0}
    for batch in tf.data.TFRecordDataset(list(files), compression_type="GZIP").batch(8192):
        parsed = tf.io.parse_example(batch, {"teacher_scores": tf.io.VarLenFeature(tf.float32)})
        scores = parsed["teacher_scores"]
        values = scores.values.numpy().astype(np.float64)
        stats["rows"] += int(scores.dense_shape[0])
        stats["width"] = max(stats["width"], int(scores.dense_shape[1]))
        stats["real"] += values.size
        stats["sum"] += float(values.sum())
        stats["sum_squares"] += float(np.square(values).sum())
    return stats


def read_all(file_patterns: Sequence[str]) -> Dict[str, np.ndarray]:
    """Every row in memory, in row order; candidates and scores padded with 0 to the longest row
    (for tests and small inspections; training streams)."""
    import tensorflow as tf

    files = shard_files(file_patterns)
    chunks = []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(8192):
        parsed = tf.io.parse_example(batch, spec())
        chunks.append({k: (tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v).numpy()
                       for k, v in parsed.items()})
    if not chunks:
        raise ValueError(f"no scored examples in {list(file_patterns)}")
    width = max(c["candidates"].shape[1] for c in chunks)
    pad = lambda a: np.pad(a, [(0, 0), (0, width - a.shape[1])])  # noqa: E731
    rows = {k: np.concatenate([pad(c[k]) if c[k].ndim == 2 else c[k] for c in chunks]) for k in spec()}
    order = np.argsort(rows["row"], kind="stable")
    return {k: v[order] for k, v in rows.items()}
