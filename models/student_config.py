"""The student's settings (models/student.py), in a module without TensorFlow: `recdistill run`
checks a configuration before it imports TensorFlow or TFX."""

import dataclasses
from typing import Optional, Union


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    dim: int = 32
    history: int = 10
    max_feature_bins: int = 128
    # The query tower's history reuses the candidate tower's item id table (fewer parameters).
    share_item_embeddings: bool = True
    # The user id table trained as two factors from the start: an Embedding [users, r] and a Dense
    # [r, dim] without bias (None: a plain [users, dim] table). An integer, or a share of dim in
    # (0, 1). The deployed models keep the two factors (models/deployable.py), so the table that
    # grows with the users holds about r / dim of the numbers. A quarter of dim (rank 8 of 32), one
    # seed each: 0.992 x the plain KD student's ndcg@10 on 1M synthetic interactions (10,000 users;
    # the int8 model 441,288 bytes instead of 680,664 at 0.991 x), 0.998 x on MovieLens-100K; rank
    # 16 of the item tables lost 8.5% at 1M (docs/student-and-compression.md, "Factorization").
    user_rank: Optional[Union[int, float]] = 0.25
    # The objective (models/distillation.py): alpha * hard + beta * soft + gamma * hint.
    # soft_loss "mse": logit matching, the teacher's logits rescaled to a standard deviation of
    # soft_scale over the scored candidates (0.16: EASE's own scale on MovieLens-100K); "kl":
    # softened distributions at `temperature`. Measured on MovieLens-100K with an EASE teacher
    # (docs/student-and-compression.md, "The student"): mse, beta 100: test ndcg@10 0.481 after the refit, 1.09 x the
    # no-KD twin; kl, T 3 on the same teacher: 0.44.
    alpha: float = 1.0
    beta: float = 100.0
    gamma: float = 0.0
    soft_loss: str = "mse"
    soft_scale: float = 0.16
    temperature: float = 3.0
    # After early stopping on the eval split has chosen the epochs, train again from the same
    # start on train + eval (the final teacher's labels) for that many epochs, as the teacher and
    # the EASE baseline are refit before ranking test users.
    refit: bool = True
    # "full": softmax over the whole catalog; "in_batch": TFRS Retrieval over the batch's
    # positives with the log-Q sampling correction (for catalogs too large for a full softmax);
    # "auto": full up to full_softmax_items catalog items, in_batch above: a training step (batch
    # 512) took 23 / 26 ms full / in-batch at 5,000 items, 96 / 30 at 10,000, 543 / 45 at 100,000
    # (tfx_pipeline/bench_hard_loss.py, docs/scale.md).
    hard_negatives: str = "auto"
    full_softmax_items: int = 5_000
    # In training, the share of candidate items whose id vector is left out (their features only):
    # what the tower learns for items that have no id vector (cold items, new items).
    item_id_dropout: float = 0.0
    # The deployed models add weight * log(1 + an item's interactions in the run's last recency_days
    # days, test split included) to their scores (models/recency_prior.py): "picked" (the weight picked on the eval
    # split, 0 included), "none", or "auto": picked for splits in time (newest_span, time_cutoff).
    recency_prior: str = "auto"
    recency_days: int = 28
    batch_size: int = 512
    learning_rate: float = 3e-3
    epochs: int = 40
    patience: int = 3
    # Phase one of a student started from the last blessed run's (data in spans; at most epochs and
    # patience): its tables start where the served model's ended (models/student_warm_start.py).
    warm_epochs: int = 6
    warm_patience: int = 2
    # An epoch is one pass over the rows, or this many rows of the repeated stream when there are
    # more (the validation, early stopping and the refit count such epochs): training time stops
    # growing with the rows. MovieLens-100K (67K rows) is not affected.
    max_epoch_rows: int = 100_000
    # The tf.distribute strategy both students train under (models/distribute.py): "default",
    # "mirrored" (the GPUs of one machine) or "multi_worker_mirrored" (TF_CONFIG's workers).
    distribute: str = "default"
    seed: int = 42

    def __post_init__(self):
        for name in ("dim", "history", "max_feature_bins", "batch_size", "epochs", "patience", "full_softmax_items",
                     "max_epoch_rows", "warm_epochs", "warm_patience", "recency_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_feature_bins < 2:
            raise ValueError("max_feature_bins must be at least 2 (bin 0 is padding)")
        if self.alpha <= 0:  # the no-KD twin trains on alpha * hard alone
            raise ValueError(f"alpha must be positive, got {self.alpha}")
        if self.beta < 0 or self.gamma < 0:
            raise ValueError(f"beta and gamma must not be negative, got {self.beta}, {self.gamma}")
        if self.hard_negatives not in ("auto", "full", "in_batch"):
            raise ValueError(f"hard_negatives must be auto, full or in_batch, got {self.hard_negatives!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.soft_loss not in ("mse", "kl"):
            raise ValueError(f"soft_loss must be mse or kl, got {self.soft_loss!r}")
        from models.distribute import STRATEGIES

        if self.distribute not in STRATEGIES:
            raise ValueError(f"distribute must be one of {', '.join(STRATEGIES)}, got {self.distribute!r}")
        if not 0.0 <= self.item_id_dropout < 1.0:
            raise ValueError(f"item_id_dropout must be in [0, 1), got {self.item_id_dropout}")
        if self.recency_prior not in ("auto", "picked", "none"):
            raise ValueError(f"recency_prior must be auto, picked or none, got {self.recency_prior!r}")
        from models.compression_config import rank_setting

        object.__setattr__(self, "user_rank", rank_setting(self.user_rank))  # YAML `user_rank: none`
        try:
            rank = self.user_rank_value()
        except ValueError as error:
            raise ValueError(f"user_rank: {error}") from None
        if rank is not None and rank >= self.dim:
            raise ValueError(f"user_rank must be below dim ({self.dim}) to factorize anything, got {self.user_rank}")
        if not self.soft_scale > 0:
            raise ValueError(f"soft_scale must be positive, got {self.soft_scale}")

    def user_rank_value(self) -> Optional[int]:
        """The user table's rank (user_rank resolved against dim), None without one."""
        from models.compression_config import rank_of

        return rank_of(self.user_rank, self.dim)

    def hard_loss_for(self, num_items: int) -> str:
        """"full" or "in_batch": the hard loss for a catalog of num_items (resolves "auto")."""
        if self.hard_negatives != "auto":
            return self.hard_negatives
        return "full" if num_items <= self.full_softmax_items else "in_batch"

    def warm_phase_one(self) -> "StudentConfig":
        """These settings with phase one's epochs and patience of a warm start (never more than a start from scratch)."""
        return dataclasses.replace(self, epochs=min(self.warm_epochs, self.epochs),
                                   patience=min(self.warm_patience, self.patience))

    def without_distillation(self) -> "StudentConfig":
        """The twin trained on the hard loss alone (beta = gamma = 0), all else equal."""
        return dataclasses.replace(self, beta=0.0, gamma=0.0)
