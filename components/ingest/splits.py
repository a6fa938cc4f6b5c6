"""Assigning interactions to the train, eval (validation) and test splits.

Three methods:
  stratified   per user, a random share of the user's interactions goes to test. With seed 42 and
               test_share 0.25 this is the Microsoft Recommenders `python_stratified_split`
               protocol (rank each user's rows by a uniform draw made in file order; the first
               round(0.75 * n) are train), so published MovieLens-100K tables compare directly.
  temporal     per user, the latest share of the user's interactions goes to test.
  time_cutoff  globally, every interaction at or after a timestamp goes to test (the timestamp is
               the (1 - test_share) quantile of all timestamps unless given).
In every method the eval split is carved out of train: per user, the eval_share of the user's
train interactions that the method would have sent to test next (the latest ones, or for the
random method the last ones in random order); for time_cutoff, a second, earlier cutoff.
"""

import dataclasses
from typing import Iterable, List, Optional, Sequence, Tuple

from components.ingest.rows import Interaction

TRAIN, EVAL, TEST = "train", "eval", "test"
SPLITS = (TRAIN, EVAL, TEST)
METHODS = ("stratified", "temporal", "time_cutoff")


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    method: str = "stratified"
    test_share: float = 0.25
    eval_share: float = 0.1
    seed: int = 42
    # time_cutoff only: explicit cutoffs in Unix seconds (None: derived from the shares).
    test_from: Optional[int] = None
    eval_from: Optional[int] = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"split method {self.method!r} is not one of {', '.join(METHODS)}")
        for name in ("test_share", "eval_share"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"split {name} must be in [0, 1), got {getattr(self, name)}")

    def cutoff_quantiles(self) -> Tuple[float, float]:
        """The quantiles of all timestamps at which time_cutoff's eval and test splits start."""
        train_share = 1.0 - self.test_share
        return train_share * (1.0 - self.eval_share), train_share


def split_user(
    interactions: Sequence[Interaction], spec: SplitSpec
) -> List[Tuple[str, Interaction]]:
    """Splits one user's interactions (stratified or temporal). Returns (split, interaction)."""
    if spec.method == "stratified":
        ordered = sorted(interactions, key=lambda r: (r.order_key, r.line))
    elif spec.method == "temporal":
        ordered = sorted(interactions, key=lambda r: (r.timestamp, r.line))
    else:
        raise ValueError(f"split_user does not do {spec.method!r}: use split_by_time")
    n_train, n_eval = _user_counts(len(ordered), spec)
    labels = [TRAIN] * (n_train - n_eval) + [EVAL] * n_eval + [TEST] * (len(ordered) - n_train)
    return list(zip(labels, ordered))


def split_by_time(interaction: Interaction, eval_from: int, test_from: int) -> str:
    if interaction.timestamp >= test_from:
        return TEST
    return EVAL if interaction.timestamp >= eval_from else TRAIN


def drop_duplicates(
    interactions: Iterable[Interaction],
) -> Tuple[List[Interaction], List[Interaction]]:
    """Separates exact repeats of an earlier row of the same user. Returns (kept, repeats)."""
    kept, repeats, seen = [], [], set()
    for row in sorted(interactions, key=lambda r: r.line):
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
