"""The teacher (Keras 3): a BERT encoder over the user's item sequence beside a wide item-item part.

  wide(u)  = (x_u . B): x_u the user's history as a multi-hot row, each item weighted
             0.5 ** (recency rank / half_life) (all 1 without a half-life), over up to `history`
             items; B the EASE item-item weights (models/ease.py), closed form on the training split
  deep(u)  = h_u . v_i + b_i: h_u the output at position 0, a [MASK] token ("the user's next
             items"), of a BERT encoder (keras-hub TransformerEncoder layers, learned position
             embeddings = recency ranks) over the user's latest `sequence` items, most recent
             first; v_i = E_item[i] + W . text(i), the item embedding, the same at the input and at
             the output (tied, as in BERT4Rec); text(i) the pretrained MiniLM sentence embedding of
             the item's text, centred and L2-normalised, so that the pretrained text reaches every
             layer.

Two ways to train the encoder (`objective`, models/teacher_objectives.py):
  "match_wide" (default): the encoder reads the user's whole (latest `sequence`) item set and is
      trained to reproduce the wide part's scores over the whole catalog, standardised per user
      (mean squared error; self-distillation of the item-item model into a BERT, as in Born-Again
      networks). The two then rank together:
          score(u, i) = z(wide(u))[i] + deep_weight * z(deep(u))[i]     (z: per-user standardised)
      deep_weight (match_wide.deep_weight) picked on the validation split unless set. Measured on
      MovieLens-100K (docs/teacher.md, "Toward a teacher that beats EASE"): the encoder alone
      slightly beats EASE, and the two together beat EASE by 3 %: an encoder that learned
      item-item structure through text-aware embeddings and attention generalises differently from
      the closed form it learned from.
  "cloze": BERT4Rec's masked-item training (models/teacher_training.py), position 0 predicting
      held-out items on top of the wide part's scores;
          score(u, i) = wide_scale * wide(u)[i] + gate * deep(u)[i]
      (kept for comparison: on MovieLens-100K it did not beat EASE, docs/teacher.md).

The wide part's l2 and half-life are picked on the validation split first (closed form, seconds)
unless set (`l2: null`, `half_life: picked`, the defaults).
Every teacher is trained twice over, as the EASE baseline and the students are: phase one on the
training split (early stopping on validation; `score_train`, the student's soft labels, so that the
student's validation split stays unseen), then the refit: B on train + eval and (`refit`) the
encoder trained on train + eval too (`score`, for ranking test users).

The code: TeacherConfig (here) holds the settings common to both objectives, `objective` (the name
of the one that trains) and each objective's own settings as a frozen dataclass, `match_wide:
MatchWide` and `cloze: Cloze` (models/teacher_objectives.py; the one not named is unused, and its
settings are kept as given: a config may switch objective by its name alone). The objective
objects own what differs between the two (the ranking, which scalar weights train, a training
batch and its loss, the deep weight's pick); `config.chosen_objective` is the named one.
No magic values: `match_wide.deep_weight` None is "picked", `half_life` a number of items or
HalfLife.PICKED / HalfLife.NONE (YAML `picked` / `none`), `l2` None is "picked". The model is
models/teacher_model.py's SequenceTeacher, built here (build_teacher); the array arithmetic the
three share is models/teacher_parts.py's.
"""

import contextlib
import dataclasses
import enum
import logging
from typing import Optional, Tuple, Union

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

from models import distribute
from models.teacher_objectives import Cloze, MatchWide
from models.teacher_warm_start import WarmStart
from models.teacher_parts import normalize_text, recency_weights, weighted_rows


class HalfLife(enum.Enum):
    """The wide part's recency half-life when it is not a number of items (YAML: its value)."""
    PICKED = "picked"  # picked on the validation split from HALF_LIFE_GRID (no decay without one)
    NONE = "none"  # no decay: every item of the history weighs 1


HALF_LIFE_GRID = (None, 100.0, 30.0, 10.0)  # the picked half-life's candidates (None: no decay)
OBJECTIVES = ("match_wide", "cloze")
REFITS = ("warm", "scratch", "none")
# Settings that moved (issue 24): a config that still sets one gets this line (tfx_pipeline/config.py).
MOVED_SETTINGS = {
    "deep_weight": "teacher deep_weight is now teacher.match_wide.deep_weight (null: picked on eval)",
    **{name: f"teacher {name} is now teacher.cloze.{name}"
       for name in ("mask_share", "future_share", "cloze_weight", "wide_scale", "gate")},
}


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    dim: int = 64
    layers: int = 2
    heads: int = 2
    intermediate: int = 256
    dropout: float = 0.2
    sequence: int = 100  # items the BERT encoder reads (most recent first)
    history: int = 1024  # items the wide part reads
    objective: str = "match_wide"  # or "cloze" (see the module's docstring); its settings below
    match_wide: MatchWide = dataclasses.field(default_factory=MatchWide)
    cloze: Cloze = dataclasses.field(default_factory=Cloze)
    # the encoder of `score` (test ranking): "scratch" trained again on train + eval for phase one's
    # best number of epochs, "warm" phase one's trained on for refit_epochs more on train + eval,
    # "none" phase one's as it is (cloze: always phase one's)
    refit: str = "warm"
    refit_epochs: int = 10
    l2: Optional[float] = None  # EASE l2; None: picked on the validation split
    # recency half-life in items, HalfLife.PICKED (on the validation split) or HalfLife.NONE (no decay)
    half_life: Union[HalfLife, float] = HalfLife.PICKED
    use_text: bool = True  # ablations: without the pretrained text ...
    use_bert: bool = True  # ... without the BERT encoder (the wide part alone)
    batch_size: int = 64
    epochs: int = 60
    patience: int = 10
    # Neither stops nor picks an epoch before this one: the encoder adds nothing in its first ~30
    # epochs, where validation is the wide part's plus noise, and a lucky early epoch stopped two
    # seeds of three at 0.4876 / 0.4753 on the MS split (docs/experiments.md, "Quality bench").
    min_epochs: int = 40
    learning_rate: float = 1e-3  # 2e-3 and 40 epochs: 0.4926 / 0.4891 on two index orders (1e-3: 0.4907 / 0.4912)
    seed: int = 42
    # Scale (docs/scale.md): an epoch is at most this many users (a fresh random draw each
    # epoch), and the wide part's choice and each epoch's validation rank at most this many eval
    # users (one seeded draw): the teacher's time stops growing with the users. MovieLens-100K's
    # 943 users are below both.
    max_epoch_users: int = 1000
    validation_users: int = 2000
    # the tf.distribute strategy the encoder trains under (models/distribute.py): "default",
    # "mirrored" (the GPUs of one machine), "multi_worker_mirrored" (TF_CONFIG's workers); batch_size
    # is the global batch, split among the replicas
    distribute: str = "default"
    # Keras 3 "mixed_float16" (float16 compute, float32 variables, loss scaling) on a GPU; ignored
    # (float32, logged) without one. Scores stay float32; the export computes in float32.
    mixed_precision: bool = False
    # phase one when started from the last blessed run's teacher (data in spans: docs/spans.md)
    warm_start: WarmStart = dataclasses.field(default_factory=WarmStart)

    def __post_init__(self):
        for name in ("dim", "layers", "heads", "intermediate", "sequence", "history", "batch_size", "epochs",
                     "patience", "refit_epochs", "max_epoch_users", "validation_users"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"teacher {name} must be a positive integer, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"teacher dim ({self.dim}) must be a multiple of heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"teacher dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.min_epochs, bool) or not isinstance(self.min_epochs, int) or self.min_epochs < 0:
            raise ValueError(f"teacher min_epochs must be a non-negative integer, got {self.min_epochs!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"teacher learning_rate must be positive, got {self.learning_rate!r}")
        if self.l2 is not None and not self.l2 > 0:
            raise ValueError(f"teacher l2 must be positive (or null: picked on eval), got {self.l2!r}")
        object.__setattr__(self, "half_life", _half_life(self.half_life))
        if self.objective not in OBJECTIVES:
            raise ValueError(f"teacher objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        for name, kind in (("match_wide", MatchWide), ("cloze", Cloze), ("warm_start", WarmStart)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"teacher {name} must be a mapping of its settings, got {getattr(self, name)!r}")
        if self.refit not in REFITS:
            raise ValueError(f"teacher refit must be one of {', '.join(REFITS)}, got {self.refit!r}")
        if self.sequence > self.history:
            raise ValueError(f"teacher sequence ({self.sequence}) must not exceed history ({self.history})")
        if self.distribute not in distribute.STRATEGIES:
            raise ValueError(f"teacher distribute must be one of {', '.join(distribute.STRATEGIES)}, "
                             f"got {self.distribute!r}")
        if not isinstance(self.mixed_precision, bool):
            raise ValueError(f"teacher mixed_precision must be true or false, got {self.mixed_precision!r}")

    @property
    def chosen_objective(self) -> Union[MatchWide, Cloze]:
        """The objective that trains: self.match_wide or self.cloze, as `objective` names."""
        return self.match_wide if self.objective == "match_wide" else self.cloze

    def unpicked_half_life(self) -> Optional[float]:
        """The half-life in items when nothing is picked (no validation split): the configured
        number, or None (no decay) for HalfLife.NONE and HalfLife.PICKED."""
        return None if isinstance(self.half_life, HalfLife) else self.half_life


def _half_life(value) -> Union[HalfLife, float]:
    """TeacherConfig.half_life as given (a HalfLife, its name as YAML writes it, or a positive
    number of items) -> HalfLife or the number; the old spellings (-1, null) name the new ones."""
    if isinstance(value, HalfLife):
        return value
    if isinstance(value, str):
        try:
            return HalfLife(value)
        except ValueError:
            pass
    if value is None:
        raise ValueError("teacher half_life null (no decay) is now half_life: none")
    if value == -1 and not isinstance(value, bool):
        raise ValueError("teacher half_life -1 (picked on eval) is now half_life: picked")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"teacher half_life must be a positive number of items, picked or none, got {value!r}")
    return value


@contextlib.contextmanager
def precision_policy(config: TeacherConfig):
    """Within: Keras 3's global dtype policy for the teacher's layers, "mixed_float16" when
    config.mixed_precision and a GPU is here, unchanged (float32) otherwise; the previous policy is
    restored on the way out (the rest of the process, tf_keras included, is unaffected: tf_keras has
    its own). Yields the policy's name.

    Without a GPU, float16 would run on the CPU, slower and less precise: the setting is ignored there
    (a warning is logged) and the teacher trains exactly as in float32.
    """
    import keras

    if not config.mixed_precision or not _has_gpu():
        if config.mixed_precision:
            logging.getLogger(__name__).warning(
                "teacher mixed_precision ignored: no GPU on this machine; the teacher trains in float32")
        yield "float32"
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield "mixed_float16"
    finally:
        keras.config.set_dtype_policy(previous)


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))  # starts no TensorFlow runtime (models/distribute.py)


def build_teacher(item_text_emb: np.ndarray, wide: np.ndarray, half_life: Optional[float],
                  config: TeacherConfig, known_items: Optional[np.ndarray] = None):
    """item_text_emb: [num_items, text_dim] (row 0: OOV); wide: B [num_items, num_items], the EASE
    weights of the split this model is trained on (phase one: train; the refit: train + eval);
    half_life: the wide part's, resolved (a number of items, None: no decay).
    known_items: [num_items] bool, the items with interactions in that split (None: all). The
    others (cold items, items seen only later) have no id vector, v_i = W . text(i) alone, and
    take no part in match_wide's loss: their wide scores are all zero, and matching that constant
    would teach their free id vectors to cancel what their text says.

    A SequenceTeacher (models/teacher_model.py), every layer built, seeded with config.seed. The
    variables are created under the strategy of config.distribute (the model's
    `distribute_strategy`, which models/teacher_training.py trains under) and the layers with
    `precision_policy(config)`.
    """
    with distribute.strategy_for(config.distribute).scope(), precision_policy(config):
        import keras

        from models.teacher_model import SequenceTeacher

        keras.utils.set_random_seed(config.seed)
        num_items = len(item_text_emb)
        text = normalize_text(item_text_emb)
        text = np.concatenate([text, np.zeros([1, text.shape[1]], np.float32)])  # the [MASK] token: no text
        # 1: the item's id vector is used; padding (0) and the [MASK] token (num_items) keep theirs
        known = np.ones(num_items + 1, np.float32)
        if known_items is not None:
            known[:num_items] = np.asarray(known_items, bool)
            known[0] = 1.0
        model = SequenceTeacher(text, known, wide, recency_weights(config.history, half_life), dim=config.dim,
                                layers=config.layers, heads=config.heads, intermediate=config.intermediate,
                                dropout=config.dropout, sequence=config.sequence, use_text=config.use_text,
                                use_bert=config.use_bert, objective=config.chosen_objective)
        model.build_layers()
        return model


def pick_wide(train_users, train_items, latest_train: np.ndarray, num_users: int, num_items: int, evaluator,
              config: TeacherConfig) -> Tuple[float, Optional[float], dict]:
    """The wide part's (l2, half_life), each picked by ndcg@10 on the validation split."""
    from models import ease

    if config.l2 is None:
        l2, l2_grid = ease.pick_l2(train_users, train_items, num_users, num_items, evaluator)
    else:
        l2, l2_grid = config.l2, {}
    weights = ease.EaseModel(num_items, l2).fit(train_users, train_items, num_users).weights
    grid = HALF_LIFE_GRID if config.half_life is HalfLife.PICKED else (config.unpicked_half_life(),)
    found = {}
    users = np.asarray(evaluator.users, np.int64)  # rows of the evaluated users only: [R, num_items]
    position = np.zeros(num_users, np.int64)
    position[users] = np.arange(len(users))
    for half_life in grid:
        rows = weighted_rows(latest_train[users], num_items, half_life)
        found[str(half_life)] = round(float(evaluator.evaluate(lambda u: rows[position[u]] @ weights,
                                                               ks=(10,))["ndcg@10"]), 4)
    best = max(grid, key=lambda h: (found[str(h)], h is None))
    return l2, best, {"l2_grid": l2_grid, "half_life_grid": found}
