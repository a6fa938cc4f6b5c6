"""Assigning interactions to the train, eval (validation) and test splits.

Three methods:
  stratified   per user, a random share of the user's interactions goes to test. With seed 42 and
               test_share 0.25 this is the Microsoft Recommenders `python_stratified_split`
               protocol (rank each user's rows by a uniform draw made in file order; the first
               round(0.75 * n) are train), so published MovieLens-100K tables compare directly.
  temporal     per user, the latest share of the user's interactions goes to test.
  time_cutoff  globally, every interaction at or after a timestamp goes to test (the timestamp is
               the (1 - test_share) quantile of all timestamps unless given).
  newest_span  input in spans (components/ingest/spans.py): time_cutoff with the quantiles taken of
               the newest span's timestamps only, so that test (and the blessing) is the newest
               span's latest test_share and eval the eval_share before it; older spans are train.
In every method the eval split is carved out of train: per user, the eval_share of the user's
train interactions that the method would have sent to test next (the latest ones, or for the
random method the last ones in random order); for time_cutoff, a second, earlier cutoff.

Cold items (`cold_items`, a share of the catalog, off by default): a seeded random draw of catalog
items is held out of training entirely: every interaction with one of them goes to test, and the
method above splits the rest. The evaluation ranks them apart (components/evaluation/cold.py).
"""

import random

import dataclasses
from typing import AbstractSet, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from components.ingest.rows import Interaction

TRAIN, EVAL, TEST = "train", "eval", "test"
SPLITS = (TRAIN, EVAL, TEST)
METHODS = ("stratified", "temporal", "time_cutoff", "newest_span")


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    method: str = "stratified"
    test_share: float = 0.25
    eval_share: float = 0.1
    seed: int = 42
    # time_cutoff and newest_span: explicit cutoffs in Unix seconds (None: derived from the shares).
    test_from: Optional[int] = None
    eval_from: Optional[int] = None
    # Share of the catalog's items held out of train and eval (their interactions all go to test).
    cold_items: float = 0.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"split method {self.method!r} is not one of {', '.join(METHODS)}")
        for name in ("test_share", "eval_share", "cold_items"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"split {name} must be in [0, 1), got {getattr(self, name)}")

    def cutoff_quantiles(self) -> Tuple[float, float]:
        """The quantiles of the timestamps (all, or the newest span's) at which eval and test start."""
        train_share = 1.0 - self.test_share
        return train_share * (1.0 - self.eval_share), train_share


def pick_cold_items(item_ids: Iterable[str], share: float, seed: int) -> FrozenSet[str]:
    """round(share x catalog) item ids, a uniform draw seeded by `seed` over the ids in sorted order
    (the same items whatever the file order or the number of Beam workers)."""
    ordered = sorted(set(item_ids))
    return frozenset(random.Random(seed).sample(ordered, round(share * len(ordered)))) if share > 0 else frozenset()


def split_user(
    interactions: Sequence[Interaction], spec: SplitSpec, cold: AbstractSet[str] = frozenset(),
) -> List[Tuple[str, Interaction]]:
    """Splits one user's interactions (stratified or temporal). Returns (split, interaction).

    Interactions with a `cold` item go to test; the user's other interactions are split as usual."""
    held_out = [(TEST, r) for r in interactions if r.item_id in cold]
    if held_out:
        interactions = [r for r in interactions if r.item_id not in cold]
    if spec.method == "stratified":
        ordered = sorted(interactions, key=lambda r: (r.order_key, r.line, r.source))
    elif spec.method == "temporal":
        ordered = sorted(interactions, key=lambda r: (r.timestamp, r.line, r.source))
    else:
        raise ValueError(f"split_user does not do {spec.method!r}: use split_by_time")
    n_train, n_eval = _user_counts(len(ordered), spec)
    labels = [TRAIN] * (n_train - n_eval) + [EVAL] * n_eval + [TEST] * (len(ordered) - n_train)
    return list(zip(labels, ordered)) + held_out


def split_by_time(interaction: Interaction, eval_from: int, test_from: int,
                  cold: AbstractSet[str] = frozenset()) -> str:
    if interaction.timestamp >= test_from or interaction.item_id in cold:
        return TEST
    return EVAL if interaction.timestamp >= eval_from else TRAIN


def drop_duplicates(
    interactions: Iterable[Interaction],
) -> Tuple[List[Interaction], List[Interaction]]:
    """Separates exact repeats of an earlier row of the same user. Returns (kept, repeats)."""
    kept, repeats, seen = [], [], set()
    for row in sorted(interactions, key=lambda r: (r.line, r.source)):  # source: spans' files
        key = row.duplicate_key()
        (repeats if key in seen else kept).append(row)
        seen.add(key)
    return kept, repeats


def _user_counts(n: int, spec: SplitSpec) -> Tuple[int, int]:
    """How many of a user's n interactions go to train (eval included), and to eval."""
    # round() as in the benchmark (banker's rounding on .5), then keep the user on both sides of
    # the split where possible: at least one interaction in train and, from two on, one in test.
    n_train = round((1.0 - spec.test_share) * n)
    if n >= 2 and spec.test_share > 0:
        n_train = min(max(n_train, 1), n - 1)
    n_train = max(min(n_train, n), 0)
    n_eval = min(round(spec.eval_share * n_train), max(n_train - 1, 0))
    return n_train, n_eval
