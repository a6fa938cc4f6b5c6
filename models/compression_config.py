"""The compression's settings (models/compression.py) and what a rank setting means
(models/factorization.py), in a module without TensorFlow: `recdistill run` checks a
configuration before it imports TensorFlow or TFX."""

import dataclasses
from typing import List, Optional, Union


def rank_setting(setting):
    """A rank setting as stored: YAML's `none` (a string) read as None, anything else as given."""
    return None if isinstance(setting, str) and setting.strip().lower() == "none" else setting


def rank_of(setting: Optional[Union[int, float]], dim: int) -> Optional[int]:
    """The rank a CompressionConfig.rank setting means for a student of width `dim` (None: none)."""
    if setting is None:
        return None
    if isinstance(setting, bool) or not isinstance(setting, (int, float)):
        raise ValueError(f"rank must be none, an integer or a share of dim in (0, 1), got {setting!r}")
    if isinstance(setting, float) and not float(setting).is_integer():
        if not 0.0 < setting < 1.0:
            raise ValueError(f"a rank given as a share of dim must be in (0, 1), got {setting}")
        return max(1, int(round(setting * dim)))
    if int(setting) < 1:
        raise ValueError(f"rank must be at least 1, got {setting}")
    return int(setting)


def full_rank_items_of(setting: Union[int, float], num_items: int) -> int:
    """How many items a CompressionConfig.full_rank_items setting keeps whole in a catalog of
    `num_items`: a share of it (a float in [0, 1], rounded: 1.0 is the whole catalog) or a count (an
    integer, at most the catalog; a float such as 2500.0 is read as one too)."""
    if isinstance(setting, bool) or not isinstance(setting, (int, float)) or not setting >= 0:
        raise ValueError(f"full_rank_items must be a share of the catalog in [0, 1] or a count, got {setting!r}")
    if isinstance(setting, float) and setting <= 1.0:
        return int(round(setting * num_items))
    if isinstance(setting, float) and not setting.is_integer():
        raise ValueError(f"a full_rank_items share must be at most 1 (or a whole count), got {setting}")
    return min(int(setting), num_items)


def items_covering(counts, coverage: float) -> int:
    """The fewest items, taken in index order (the vocabulary's: most frequent first), that hold at
    least `coverage` of the interactions; counts: [num_items] interactions per item in index order
    (no padding row). 0 for a coverage of 0 or no interactions."""
    import numpy as np  # here: this module is read before the CLI imports the heavy packages

    total = float(np.sum(counts))
    if coverage <= 0 or total <= 0:
        return 0
    held = np.cumsum(counts, dtype=np.float64) / total
    return int(min(np.searchsorted(held, coverage - 1e-12) + 1, len(counts)))


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    # Per layer. Measured on MovieLens-100K (int8 TFLite test ndcg@10 / float student_kd 0.4544):
    # 75% everywhere 0.85-0.88x; 60% everywhere 0.97x. The scoring Dense holds the catalog's item
    # embeddings and is the sensitive layer (one-shot 50% of it alone: 0.38, where 75% of the user
    # or history table alone costs 0.02 or less). Embeddings / Dense after 16 + 1 epochs: 70% / 45%
    # 0.978x; after 24 + 2: 70% / 45% 0.980x, 80% / 30% 0.986x, 75% / 35% 0.989x (60% of all
    # weights zero, int8 gzip 0.142x of the float TFLite).
    target_sparsity: float = 0.75  # of every Embedding table
    dense_sparsity: float = 0.35  # of the scoring Dense
    # Fine-tuning epochs with pruning, the first ramp_epochs raising sparsity (8 and 3: 0.957x).
    # 16 rather than 24 since the teacher's encoder takes 60 s more of `make run` (docs/student-and-compression.md).
    prune_epochs: int = 16
    ramp_epochs: int = 8
    qat_epochs: int = 2
    # The same, when the KD student started from the last blessed run's (data in spans): pruning and
    # QAT are applied again in every run, to a student that starts near the one served.
    warm_prune_epochs: int = 6
    warm_ramp_epochs: int = 3
    warm_qat_epochs: int = 1
    learning_rate: float = 1e-3
    pruning_frequency: int = 20  # steps between mask updates
    # Weight of a third term while fine-tuning, relative to the soft term's beta: the student's
    # soft loss (StudentConfig.soft_loss) against the uncompressed student's scores over the whole
    # catalog (it knows every item's score; the teacher scored 101 per row). KL at T 3, weight 4
    # (absolute) gave +0.013 ndcg@10 over none at 75% sparsity; with logit matching the term must
    # scale with beta (an absolute 4 left the int8 model at 0.967 x student_kd).
    reference_weight: float = 4.0
    # Low-rank factorization before pruning (models/factorization.py): the user and history-item
    # tables and the scoring kernel each as two factors of this rank, from their truncated SVD,
    # then fine-tuned by the pruning stage. None (no factorization), a rank, or a share of dim in (0, 1).
    # Factorizing every item cost too much on larger catalogs (1M synthetic interactions, 5,000
    # items: rank 20 0.960 x, rank 16 0.907 x the int8 model without factorization), hence mixed
    # dimensions below: the default is the point of the two data sets' frontiers (docs/
    # student-and-compression.md, "Mixed dimensions") of the smallest MovieLens-100K gzip size among
    # those keeping >= 0.984 x (the push gate's 0.98 with headroom) on both data sets: rank 8 (a
    # quarter of dim 32) after the most frequent half of the catalog; at 1M 0.984 x (the whole DAG
    # on a fresh clone, against the same run without factorization: 0.982 x) in 0.48 x the
    # bytes, on MovieLens-100K 0.989 x of the KD student (rank 8 after 0.4 of it: 0.981 x at 1M).
    rank: Optional[Union[int, float]] = 0.25
    # Mixed dimensions (models/factorization.py): with a rank, the most frequent items (the vocabulary
    # lists them first) keep their full-width history rows and scoring columns, and only the others
    # are factorized. A share of the catalog in [0, 1), or a count; 0 factorizes every item. At 1M
    # the quality follows the bytes: 0.25 0.966 x in 0.39 x the bytes, 0.4 0.981 x in 0.44 x (too
    # close to the push gate's 0.98 for a default), 0.5 0.984 x in 0.48 x.
    full_rank_items: Union[int, float] = 0.5
    # ... and at least the most frequent items that hold this share of the training interactions (0:
    # full_rank_items alone). A flatter catalog keeps more whole: the first half holds 93% of
    # MovieLens-100K's training interactions and 90% at 1M (so 0.5 stands there), but 83% on the
    # synthetic weekly spans (2,000 users, 1,000 items), where rank 8 after half of the catalog cost
    # 4-5% (0.950 and 0.958 x student_kd at spans 2 and 3: refused by the push gate) and keeping
    # 0.63 of it whole (what 0.9 asks there) 0.986 x (docs/student-and-compression.md).
    full_rank_coverage: float = 0.9
    # The share of the KD student's ndcg@10 on the eval split that the compressed model (its int8
    # form) must keep; below it the compression is done again, gentler (`gentler`), and the first
    # that keeps it, or else the best, is exported. The push gate refuses an int8 model below 0.98 x
    # the KD student on the test: 0.99 leaves headroom, because the refit trains on the eval rows,
    # where the compressed model reads 0-4% kinder than on the test (synthetic weekly spans:
    # 0.949 / 0.949, 0.975 / 0.971, 0.967 / 0.948, 1.025 / 0.989; MovieLens-100K 0.995 / 0.987).
    # 0 turns the check off.
    min_kept: float = 0.99

    def __post_init__(self):
        object.__setattr__(self, "rank", rank_setting(self.rank))  # YAML `rank: none`
        rank_of(self.rank, 32)  # raises ValueError for a rank that cannot be one
        full_rank_items_of(self.full_rank_items, 1)  # likewise for a share or count that cannot be one
        if isinstance(self.full_rank_coverage, bool) or not 0.0 <= self.full_rank_coverage <= 1.0:
            raise ValueError(f"full_rank_coverage must be a share in [0, 1], got {self.full_rank_coverage!r}")
        for name in ("target_sparsity", "dense_sparsity"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if min(self.prune_epochs, self.ramp_epochs, self.pruning_frequency) < 1 or self.qat_epochs < 0:
            raise ValueError("prune_epochs, ramp_epochs and pruning_frequency must be at least 1, qat_epochs at least 0")
        if self.ramp_epochs > self.prune_epochs:
            raise ValueError(f"ramp_epochs ({self.ramp_epochs}) must not exceed prune_epochs ({self.prune_epochs})")
        if min(self.warm_prune_epochs, self.warm_ramp_epochs) < 1 or self.warm_qat_epochs < 0:
            raise ValueError("warm_prune_epochs and warm_ramp_epochs must be at least 1, warm_qat_epochs at least 0")
        if isinstance(self.min_kept, bool) or not 0.0 <= self.min_kept <= 1.0:
            raise ValueError(f"min_kept must be a share in [0, 1], got {self.min_kept!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")

    def warm(self) -> "CompressionConfig":
        """These settings with a warm start's epochs (never more than a start from scratch)."""
        prune = min(self.warm_prune_epochs, self.prune_epochs)
        return dataclasses.replace(self, prune_epochs=prune, ramp_epochs=min(self.warm_ramp_epochs, self.ramp_epochs, prune),
                                   qat_epochs=min(self.warm_qat_epochs, self.qat_epochs))

    def gentler(self) -> List["CompressionConfig"]:
        """The settings the compressor tries, in order, while its model keeps less than min_kept of the
        KD student: these, then without factorization (when these factorize), then that at half the
        sparsity."""
        steps = [self]
        if self.rank is not None:
            steps.append(dataclasses.replace(self, rank=None))
        steps.append(dataclasses.replace(steps[-1], target_sparsity=self.target_sparsity / 2,
                                         dense_sparsity=self.dense_sparsity / 2))
        return steps
