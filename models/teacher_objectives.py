"""The teacher's two training objectives, each a frozen dataclass of its own settings that owns what
differs between them (models/teacher.py's docstring has the why):

  MatchWide: the encoder reproduces the wide part's standardised scores (mean squared error);
      ranking z(wide) + deep_weight x z(deep); deep_weight None: picked on the validation split from
      DEEP_WEIGHT_GRID (without one, DEFAULT_DEEP_WEIGHT).
  Cloze: BERT4Rec's masked-item training on top of the wide part's scores; ranking
      wide_scale x wide + gate x deep, both scalars trained.

What an objective answers: the model's scalar weights and which of them train (`scalar_weights`,
`initial_deep_weight`), the ranking (`combine`), the order of an epoch's users (`order`), a training
batch (`batch`) and one replica's step with its loss (`train_replica`), the deep weights the
validation tries (`weight_candidates`), and two flags: whether the deep weight ranks (and is
picked), whether the refit trains the encoder again. models/teacher_training.py runs the loop.
"""

import dataclasses
from typing import Callable, ClassVar, Optional, Tuple

import numpy as np

from models.teacher_parts import standardize, weighted_rows

DEEP_WEIGHT_GRID = (0.25, 0.5, 0.75, 1.0)
DEFAULT_DEEP_WEIGHT = 0.75  # without a validation split to pick on (what MovieLens-100K picks)

# A training batch: (arrays, each split by rows among the replicas; scalars of the whole batch).
Batch = Tuple[Tuple[np.ndarray, ...], Tuple[np.float32, ...]]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _query_and(sequence: np.ndarray, num_items: int) -> np.ndarray:
    """[b, S] -> [b, S + 1]: the [MASK] query token (index num_items) in front of each sequence."""
    return np.concatenate([np.full([len(sequence), 1], num_items, np.int64), sequence], axis=1)


def _trimmed(sequence: np.ndarray) -> np.ndarray:
    """[b, S] -> [b, S'], S' the longest row's item count (at least 1): no all-padding columns."""
    return sequence[:, :max(int((sequence > 0).sum(axis=1).max(initial=0)), 1)]


@dataclasses.dataclass(frozen=True)
class MatchWide:
    """objective "match_wide" (the default)."""
    deep_weight: Optional[float] = None  # the encoder's weight in the ranking; None: picked on eval

    # Not settings: the wide part's scale is fixed (the ranking and the target standardise it away, up
    # to rounding; 40, cloze's default, is what every figure was measured with) and the gate unused.
    WIDE_SCALE: ClassVar[float] = 40.0
    GATE: ClassVar[float] = 0.1
    ranks_with_deep_weight: ClassVar[bool] = True  # picked on eval with the epoch, logged, kept
    refit_trains: ClassVar[bool] = True  # the refit trains the encoder again (TeacherConfig.refit)

    def __post_init__(self):
        if self.deep_weight is not None and not (_number(self.deep_weight) and self.deep_weight >= 0):
            raise ValueError("teacher match_wide.deep_weight must be a number >= 0 or null (picked on eval), "
                             f"got {self.deep_weight!r}")

    def scalar_weights(self, use_bert: bool) -> Tuple[Tuple[float, bool], Tuple[float, bool]]:
        """((wide_scale, trained), (gate, trained)): the model's initial scalar weights."""
        return (self.WIDE_SCALE, False), (self.GATE, False)

    def initial_deep_weight(self, use_bert: bool) -> float:
        """The model's deep weight until one is picked (0 without BERT: nothing to weigh)."""
        return self.deep_weight if use_bert and self.deep_weight is not None else 0.0

    def unvalidated_deep_weight(self) -> float:
        """The deep weight without a validation split: the configured one or DEFAULT_DEEP_WEIGHT."""
        return self.deep_weight if self.deep_weight is not None else DEFAULT_DEEP_WEIGHT

    def weight_candidates(self, model) -> Tuple[float, ...]:
        """The deep weights an epoch's validation ranks with (the best is kept)."""
        if model.use_bert and self.deep_weight is None:
            return DEEP_WEIGHT_GRID
        return (float(np.asarray(model.deep_weight)),)

    def combine(self, model, wide, deep, deep_weight):
        """[B, num_items] wide and deep logits -> z(wide) + deep_weight x z(deep)."""
        return standardize(wide) + deep_weight * standardize(deep)

    def order(self, users: np.ndarray, latest: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An epoch's users in batch order: random (length-sorted batches: 0.4834 vs 0.49, docs/teacher.md)."""
        return rng.permutation(users)

    def batch(self, latest: np.ndarray, users: np.ndarray, sequence: int, num_items: int,
              rng: np.random.Generator, half_life: Optional[float]) -> Batch:
        """latest [num_users, H] -> ((inputs [b, S'+1]: [MASK] then the latest `sequence` items, rows
        [b, I]: the wide part's input, the recency-weighted whole history), (cells: b x (I - 1), the
        batch's number of scores)). No corruption: the encoder reads the user's items and learns to
        score the catalog as the wide part does from them. rng is not drawn from."""
        full = latest[users]
        inputs = _query_and(_trimmed(full[:, :sequence]), num_items)
        rows = weighted_rows(full, num_items, half_life)
        return (inputs, rows), (np.float32(len(inputs) * (num_items - 1)),)

    def train_replica(self, model, step: Callable, inputs, rows, cells):
        """One replica's step: `step(loss)` minimises loss() (a GradientTape around it) and returns it.
        The target, the wide part's standardised scores, is computed outside the tape."""
        import tensorflow as tf

        target = tf.stop_gradient(standardize(model.wide_logits(rows)))[:, 1:]
        known = model.known[1:model.num_items]  # unknown items' all-zero wide scores are no target

        def loss():
            deep = model.deep_logits(model.encode(inputs, training=True)[:, 0])[:, 1:]
            return tf.reduce_sum(tf.square(deep - target) * known) / cells

        return step(loss)


@dataclasses.dataclass(frozen=True)
class Cloze:
    """objective "cloze" (kept for comparison)."""
    mask_share: float = 0.25  # the share of the sequence's items replaced by [MASK]
    future_share: float = 0.2  # at most this share of the most recent items is cut off
    cloze_weight: float = 0.5  # the masked positions' loss's weight
    wide_scale: float = 40.0  # the wide part's initial scale (trained)
    gate: float = 0.1  # the encoder's initial gate (trained)

    ranks_with_deep_weight: ClassVar[bool] = False  # the gate weighs the encoder
    refit_trains: ClassVar[bool] = False  # the refit keeps phase one's encoder

    def __post_init__(self):
        for name in ("mask_share", "future_share"):
            value = getattr(self, name)
            if not (_number(value) and 0.0 <= value < 1.0):
                raise ValueError(f"teacher cloze.{name} must be in [0, 1), got {value!r}")
        if not (_number(self.wide_scale) and self.wide_scale > 0):
            raise ValueError(f"teacher cloze.wide_scale must be positive, got {self.wide_scale!r}")
        for name in ("cloze_weight", "gate"):
            if not _number(getattr(self, name)):
                raise ValueError(f"teacher cloze.{name} must be a number, got {getattr(self, name)!r}")

    def scalar_weights(self, use_bert: bool) -> Tuple[Tuple[float, bool], Tuple[float, bool]]:
        """((wide_scale, trained), (gate, trained)): both trained (the gate with BERT only)."""
        return (self.wide_scale, True), (self.gate, use_bert)

    def initial_deep_weight(self, use_bert: bool) -> float:
        return 0.0  # not part of cloze's ranking

    def unvalidated_deep_weight(self) -> float:
        # Reported only (training.json's deep_weight without a validation split), never ranked with:
        # what the code reported before the objectives were objects (issue 24), kept so that figures stay.
        return DEFAULT_DEEP_WEIGHT

    def weight_candidates(self, model) -> Tuple[float, ...]:
        return (float(np.asarray(model.deep_weight)),)

    def combine(self, model, wide, deep, deep_weight):
        """[B, num_items] wide and deep logits -> wide + gate x deep (wide_logits carries wide_scale)."""
        return wide + model.gate * deep

    def order(self, users: np.ndarray, latest: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Users of similar history length share a batch (less padding); the batches go in random order."""
        return users[np.argsort((latest[users] > 0).sum(axis=1) + rng.random(len(users)) * 8)]

    def batch(self, latest: np.ndarray, users: np.ndarray, sequence: int, num_items: int,
              rng: np.random.Generator, half_life: Optional[float]) -> Batch:
        """latest [num_users, H] -> ((inputs [b, S'+1], targets [b, I], cloze [b, S'+1], wide rows [b, I]),
        (users with held-out items, masked positions: each at least 1)): a fresh corruption (the
        module's docstring of models/teacher_training.py)."""
        full = latest[users]
        lengths = (full > 0).sum(axis=1)
        cut = rng.integers(0, np.floor(self.future_share * lengths).astype(np.int64) + 1)
        targets = np.zeros([len(users), num_items], np.float32)
        remaining = np.zeros_like(full)
        for row, k in enumerate(cut):
            targets[row, full[row, :k]] = 1.0
            remaining[row, :full.shape[1] - k] = full[row, k:]
        visible = _trimmed(remaining[:, :sequence])
        masked = (rng.random(visible.shape) < self.mask_share) & (visible > 0)
        np.put_along_axis(targets, np.where(masked, visible, 0), 1.0, axis=1)
        targets[:, 0] = 0.0
        rows = weighted_rows(remaining, num_items, half_life)
        rows *= 1.0 - targets  # held-out items are not part of the input
        inputs = _query_and(np.where(masked, num_items, visible), num_items)
        cloze = np.concatenate([np.zeros([len(users), 1], np.int64), np.where(masked, visible, 0)], axis=1)
        counts = (np.float32(max(int((targets.sum(axis=1) > 0).sum()), 1)), np.float32(max(int((cloze > 0).sum()), 1)))
        return (inputs, targets, cloze, rows), counts

    def train_replica(self, model, step: Callable, inputs, targets, cloze, rows, users, masked):
        """One replica's step (`step` as MatchWide's): position 0's multinomial likelihood of the held-out
        items over the ranking, plus cloze_weight x each masked position's cross-entropy of its item."""
        import tensorflow as tf

        def loss():
            hidden = model.encode(inputs, training=True)
            logits = model.wide_logits(rows) + model.gate * model.deep_logits(hidden[:, 0])
            logits -= 1e9 * tf.one_hot(0, model.num_items)
            counts = tf.reduce_sum(targets, axis=1)
            per_user = -tf.reduce_sum(targets * tf.nn.log_softmax(logits), axis=1) / tf.maximum(counts, 1.0)
            total = tf.reduce_sum(per_user) / users
            where = tf.where(cloze > 0)
            cloze_logits = model.deep_logits(tf.gather_nd(hidden, where))
            cloze_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.gather_nd(cloze, where), cloze_logits)
            total += self.cloze_weight * (tf.reduce_sum(cloze_loss) / masked) if self.cloze_weight else 0.0
            return total

        return step(loss)
