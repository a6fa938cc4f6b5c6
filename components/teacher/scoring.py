"""Teacher scoring on Beam, in the manner of TFX's BulkInferrer: soft labels for distillation.

Two sets of rows, for the student's two phases (models/student_training.py); a warm start on the
newest span's data scores only its rows of each (below), and one without phase one (the teacher's
training.json: phase_one false) Split-final alone (Split-train is then an empty directory, and
scoring_stats.json names the splits scored):
    Split-train  every training interaction, scored by the teacher that saw only the training
                 split (`score_train`, the user's training history; seen = training items): the
                 student learns from it while its early stopping watches the eval split, unseen.
    Split-final  every train and eval interaction, scored by the final teacher (`score`: its wide
                 part refit on train + eval, the user's train + eval history; seen = both): the
                 student is refit on it for the epochs phase one chose, as the teacher and the
                 EASE baseline are refit before ranking test users. (Refitting on the training
                 teacher's labels instead gave 0.466 against 0.481 test ndcg@10 on MovieLens-100K.)
For each row the teacher's candidates are the positive item first, then N items drawn uniformly
from those the user has not interacted with (in the row's seen set), then the N highest-scored
such items (hard negatives); the two kinds never share an item, and neither holds the positive.
The teacher scores each user once, on the history it ranks from (its whole history, as at test
time), and every row of that user takes its candidates from those scores: the cost grows with
users, not interactions. Eval items may be negatives of Split-train rows, as test items may: the
student's early stopping on the eval split is then an unbiased stand-in for test (when eval items
were excluded, the KD student learned to rank them apart from the others, and early stopping chose
the wrong epoch). Every row has 1 + 2N candidates unless the catalog is too small for that.
Output, one tf.Example per row:
    row (int64)               position of the interaction in its rows (train; train then eval)
    user_index, item_index    (int64) as in the teacher's dataset index (interaction_data.py)
    candidates                (int64 [1 + 2N]) positive, N sampled, N hard
    teacher_scores            (float [1 + 2N]) the teacher's logits for the candidates
Workers load the SavedModel once (DoFn.setup) and score rows in chunks; the draws depend only on
the seed, the split and the row, so the output is the same for any number of workers.

A warm start on the newest span's data (models/teacher_warm_start.py, WarmStart.data; the teacher's
training.json names its first timestamp) has the rows from that timestamp on scored alone: the
students and the compression go on from the served model with what is new. Every row still counts
as seen (no negative is an item the user had), and every history is whole.
Output size: each row holds 1 + 2N candidates (int64 and float each: about 12 bytes per candidate
before gzip). N is the `negatives` setting (50) unless rows x (1 + 2N) would exceed
`candidate_budget` (20M scored candidates per split, about 240 MB): then the largest N that fits,
at least MIN_NEGATIVES (`scored_negatives`). MovieLens-100K (75K train + eval rows) keeps N = 50;
the 1M-interaction bench's 800,001 rows get N = 11.
Workers: a scorer with at most IN_PROCESS_ROWS rows in each split runs in-process on the
DirectRunner, whatever `scoring_workers` says: each worker process imports TensorFlow and loads the
teacher before it scores a row, which costs more than a few shards save. Measured on this 2-core
machine (MovieLens-100K's teacher, 2026-12-05): a warm run's 8,547 rows took 10-13 s in-process and
18.6 s on two workers; a window's 49,311 rows 40-49 s in-process and 41 s on two workers.
Files: each split is written as shards of SHARD_ROWS consecutive rows, in row order
(`part-SSSSS-of-NNNNN.gz`), so that a reader streaming them sees the same rows in the same order
on every run; `scoring_stats.json` beside the splits holds, per split, the row count, the
candidate width and the sum and sum of squares of the real candidates' scores (what the student
needs to rescale the teacher's logits without a pass over the data).
"""

import json
import os
from typing import Dict, Iterator, Tuple

import apache_beam as beam
import numpy as np

from components.teacher import training
from models import artifacts
from models.foundation import beam_credentials
from models.foundation.progress import report_progress

beam_credentials.anonymous_when_emulated()  # the scoring DoFns run in Beam workers, on gs:// too

CHUNK_ROWS = 512
SHARD_ROWS = 16384  # ML-100K's 67K training rows: 5 shards for the scorer's workers to share
MIN_NEGATIVES = 4
IN_PROCESS_ROWS = 2 * SHARD_ROWS
CANDIDATE_BUDGET = 20_000_000


SCORED_SPLITS = ("train", "final")
# split -> the teacher's endpoint (models/teacher_training.py, export)
ENDPOINTS = {"train": "score_train", "final": "score"}


def scored_negatives(negatives: int, rows: int, budget: int = CANDIDATE_BUDGET) -> int:
    """N for a split of `rows` rows: `negatives`, or fewer when rows x (1 + 2N) would exceed the budget."""
    fits = (budget // max(rows, 1) - 1) // 2
    return max(min(negatives, fits), min(negatives, MIN_NEGATIVES))


def score_training_rows(p: beam.Pipeline, teacher_dir: str, output_dir: str, negatives: int, seed: int = 0,
                        budget: int = CANDIDATE_BUDGET) -> int:
    """Writes Split-train, Split-final and scoring_stats.json (see the module's docstring); returns N."""
    from models.foundation import storage

    dataset = _load_dataset(teacher_dir)
    rows_from = training.rows_from(teacher_dir)
    sizes = {split: len(_scored_positions(_rows_of(dataset, split), rows_from)) for split in scored_splits(teacher_dir)}
    negatives = scored_negatives(negatives, max(sizes.values()), budget)  # one N: one soft-label scale
    in_process_when_small(p, max(sizes.values()))
    for split in SCORED_SPLITS:  # a split not scored is an empty directory: the artifact names both (TFX's
        storage.makedirs(storage.join(output_dir, f"Split-{split}"))  # Trainer checks its TrainArgs splits)
    stats = []
    for split in sizes:
        size = sizes[split]
        shards = [(start, min(start + SHARD_ROWS, size)) for start in range(0, size, SHARD_ROWS)]
        directory = storage.join(output_dir, f"Split-{split}")  # made above
        stats.append(
            p
            | f"Shards[{split}]" >> beam.Create(list(enumerate(shards)))
            | f"Spread[{split}]" >> beam.Reshuffle()
            | f"Score[{split}]" >> beam.ParDo(ScoreShard(teacher_dir, negatives, seed, split, directory, len(shards)))
            | f"Sum[{split}]" >> beam.CombineGlobally(_merge_stats)
            | f"Name[{split}]" >> beam.Map(lambda total, name=split: (name, total)))
    _ = (stats | "Splits" >> beam.Flatten() | "All" >> beam.combiners.ToDict()
         | "WriteStats" >> beam.Map(lambda by_split: storage.write_text(
             storage.join(output_dir, artifacts.SCORING_STATS_FILE),
             json.dumps({"negatives": negatives, "splits": by_split}, indent=2))))
    return negatives


def scored_splits(teacher_dir: str) -> Tuple[str, ...]:
    """The splits to score: both, or Split-final alone after a warm start without phase one (its
    students train on the final teacher's rows alone: components/student/distill.py)."""
    return SCORED_SPLITS if training.phase_one_ran(teacher_dir) else ("final",)


def in_process_when_small(p: beam.Pipeline, rows: int) -> bool:
    """Makes the DirectRunner's pipeline `p` (not run yet) run in-process when its largest split has at
    most IN_PROCESS_ROWS rows (the module's docstring, "Workers"); True when it did. Other runners
    (Dataflow) keep their options."""
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner

    if rows > IN_PROCESS_ROWS or not isinstance(p.runner, SwitchingDirectRunner):
        return False
    direct = p.options.view_as(DirectOptions)
    direct.direct_running_mode, direct.direct_num_workers = "in_memory", 1
    return True


def read_stats(scored_dir: str) -> Dict:
    """scoring_stats.json of a scored-examples artifact: {"negatives": N, "splits": {split: {"rows",
    "width", "real", "sum", "sum_squares"}}}."""
    from models.foundation import storage

    return storage.read_json(storage.join(scored_dir, artifacts.SCORING_STATS_FILE))


def _empty_stats() -> Dict:
    return {"rows": 0, "width": 0, "real": 0, "sum": 0.0, "sum_squares": 0.0}


def _merge_stats(parts) -> Dict:
    total = _empty_stats()
    for part in parts:
        total = {k: max(total[k], part[k]) if k == "width" else total[k] + part[k] for k in total}
    return total


class ScoreShard(beam.DoFn):
    """(shard number, (first row, end row)) -> writes that shard's file; yields its statistics."""

    def __init__(self, teacher_dir: str, negatives: int, seed: int, split: str, directory: str, shards: int):
        self._rows = ScoreRows(teacher_dir, negatives, seed, split)
        self._directory, self._shards = directory, shards

    def setup(self):
        self._rows.setup()

    def process(self, shard: Tuple[int, Tuple[int, int]]) -> Iterator[Dict]:
        import tensorflow as tf

        from models.foundation import storage

        number, (first, end) = shard
        path = storage.join(self._directory, f"part-{number:05d}-of-{self._shards:05d}.gz")
        stats = _empty_stats()
        # Written under a temporary name and renamed: a retried bundle never leaves half a shard.
        with tf.io.TFRecordWriter(path + ".tmp", options="GZIP") as writer:
            for start in range(first, end, CHUNK_ROWS):
                for example, scores in self._rows.score_chunk(start, min(start + CHUNK_ROWS, end)):
                    writer.write(example)
                    stats["rows"] += 1
                    stats["width"] = max(stats["width"], len(scores))
                    stats["real"] += len(scores)
                    stats["sum"] += float(np.sum(scores, dtype=np.float64))
                    stats["sum_squares"] += float(np.sum(np.square(scores, dtype=np.float64)))
        storage.rename(path + ".tmp", path, overwrite=True)
        report_progress(f"scored {self._rows.split} rows {first}-{end} (shard {number + 1} of {self._shards})")
        yield stats


class ScoreRows:
    def __init__(self, teacher_dir: str, negatives: int, seed: int, split: str = "train"):
        self._dir, self._negatives, self._seed, self._split = teacher_dir, negatives, seed, split

    @property
    def split(self) -> str:
        return self._split

    def setup(self):
        import tensorflow as tf

        from models.interaction_data import latest_items

        model = tf.saved_model.load(os.path.join(self._dir, artifacts.SAVED_MODEL_DIR))
        self._score = getattr(model, ENDPOINTS[self._split])
        self._model = model  # keeps the endpoint's variables alive
        dataset = _load_dataset(self._dir)
        self._rows = _rows_of(dataset, self._split)
        length = training.read_summary(self._dir)["config"]["history"]
        self._latest = latest_items(self._rows, dataset.num_users, length)
        self._num_items = dataset.num_items
        self._seen = _seen_by_user(self._rows, dataset.num_users)
        self._seen_sets = [set(s.tolist()) for s in self._seen]
        self._positions = _scored_positions(self._rows, training.rows_from(self._dir))

    def score_chunk(self, start: int, end: int) -> Iterator[Tuple[bytes, np.ndarray]]:
        """(serialized example, its candidates' scores) for the scored rows [start, end) (every row of
        the split, or those of a warm start's newest span: _scored_positions)."""
        import tensorflow as tf

        rows = self._positions[start:end]
        users, items = self._rows.user[rows], self._rows.item[rows]
        # One teacher call per user of the chunk, on the history it ranks that user from; the
        # positive is one of the user's seen items, so the hard negatives are the user's, not the row's.
        unique, position = np.unique(users, return_inverse=True)
        scores = self._score(tf.constant(unique), tf.constant(self._latest[unique])).numpy()
        hard = [self.hard_negatives(user, scores[k]) for k, user in enumerate(unique)]
        for b, row in enumerate(rows):
            k = position[b]
            candidates = np.concatenate([[items[b]], self.sampled(row, users[b], hard[k]), hard[k]]).astype(np.int64)
            chosen = scores[k][candidates]
            yield _example(row, users[b], items[b], candidates, chosen), chosen

    def hard_negatives(self, user: int, scores: np.ndarray) -> np.ndarray:
        """The user's N highest-scored unseen items, best first, ties by index."""
        masked = scores.copy()
        masked[self._seen[user]] = -np.inf
        masked[0] = -np.inf
        # Fewer unseen items than 2N (a tiny catalog): fewer candidates, never a repeated one.
        n = min(self._negatives, (self._num_items - 1 - len(self._seen[user])) // 2)
        hard = np.argpartition(-masked, n)[:n] if n > 0 else np.zeros([0], np.int64)
        return hard[np.lexsort((hard, -masked[hard]))]

    def sampled(self, row: int, user: int, hard: np.ndarray) -> np.ndarray:
        """As many unseen items as there are hard negatives, uniform, distinct from them; the draws
        depend only on the seed, the split and the row."""
        seen_set, hard_set = self._seen_sets[user], set(hard.tolist())
        rng = np.random.default_rng([self._seed, SCORED_SPLITS.index(self._split), int(row)])
        sampled = []
        while len(sampled) < len(hard):  # rejection sampling: a user has seen few of the catalog's items
            draw = int(rng.integers(1, self._num_items))
            if draw not in seen_set and draw not in sampled and draw not in hard_set:
                sampled.append(draw)
        return np.array(sampled, np.int64)


def _seen_by_user(train, num_users: int):
    seen = [set() for _ in range(num_users)]
    for user, item in zip(train.user.tolist(), train.item.tolist()):
        seen[user].add(item)
    return [np.array(sorted(s), np.int64) for s in seen]


def _scored_positions(rows, rows_from) -> np.ndarray:
    """The positions of the rows to score: all, or those at or after rows_from. Their examples keep
    their positions (`row`), so the draws of a row are the same whichever rows are scored."""
    if rows_from is None:
        return np.arange(len(rows.user))
    return np.flatnonzero(rows.timestamp >= rows_from)


def _rows_of(dataset, split: str):
    """The interactions of a scored split, in row order (train, then eval for "final")."""
    return dataset.splits["train"] if split == "train" else training.latest_split(dataset)


def _load_dataset(teacher_dir: str):
    from models.interaction_data import load_dataset

    return load_dataset(os.path.join(teacher_dir, artifacts.DATASET_FILE))


def _example(row, user, item, candidates, scores) -> bytes:
    import tensorflow as tf

    ints = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))  # noqa: E731
    return tf.train.Example(features=tf.train.Features(feature={
        "row": ints([int(row)]), "user_index": ints([int(user)]), "item_index": ints([int(item)]),
        "candidates": ints(candidates.tolist()),
        "teacher_scores": tf.train.Feature(float_list=tf.train.FloatList(value=scores.tolist())),
    })).SerializeToString()
