"""The teacher's weights between runs: saved beside its export, and a new run's teacher started from
them when the data moved only a little (data in spans, docs/spans.md).

Keras 3's load_model does not read SavedModels, so the exporter also writes the final teacher's
weights as arrays (`save`, artifacts.TEACHER_WEIGHTS_FILE). A warm start (`restore`) copies them into
a freshly built teacher of the new run:
  - every weight that does not depend on the catalog (the text projection, the recency-rank
    embedding, the layer norms, the Transformer layers, the objective's scalars), matched by its
    position among the model's weights, with its shape checked;
  - the item-indexed ones by item id: the id embedding (its last row: the [MASK] token) and the
    output bias. An item the earlier teacher knew keeps its row, whatever its index now; an item
    new in this run keeps its fresh initialisation, as a cold item: its vector comes from its text
    (SequenceTeacher.item_vectors) until training gives it interactions.
The catalog-sized constants (texts, the wide part's B, the known-item flags, the recency weights)
are rebuilt from the run's data, as in every run. A teacher of another architecture (layers,
width, text model) cannot be started from: ArchitectureChanged says why, and the run trains from
scratch.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np

from models.foundation import storage

WARM_DATA = ("newest_span", "window")
_ITEM_EMBEDDINGS, _OUT_BIAS, _SHARED = "item_embeddings", "out_bias", "shared_{:03d}"
# The ranking's deep weight the earlier teacher was picked with (not trained: restore does not assign
# it; a warm start without phase one ranks with it, saved_deep_weight). Absent from older files.
_DEEP_WEIGHT = "deep_weight"


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """A teacher started from an earlier one (TeacherConfig.warm_start). By default it skips phase
    one: it goes on from the served teacher on train + eval for `refit_epochs` epochs, and so do the
    students (components/student/distill.py); the push gate on the newest span's test is the check.
    With phase_one, phase one (fewer epochs than from scratch) and the refit run as in any run."""

    # Phase one of a warm teacher picked its epoch and deep weight on a validation curve that barely
    # moved (synthetic weekly spans: 0.1126-0.1144 over four epochs, best after 2-5), then the refit
    # trained 3 more on train + eval; without it the run saves the validation, phase one's epochs and
    # model, the scorer's training split and the students' phase one (docs/spans.md).
    phase_one: bool = False
    # On the synthetic weekly spans a warm phase one peaked after 0-6 epochs: a patience of 5 spent
    # as many epochs again, and the refit's 10 as many as phase one (docs/spans.md).
    epochs: int = 15
    min_epochs: int = 0  # as TeacherConfig.min_epochs: nothing stops or is picked before it
    patience: int = 2
    # Epochs on train + eval: the whole training without phase one, the warm refit's after it.
    refit_epochs: int = 5
    # What a warm run trains on. "newest_span": the teacher's epochs go over the users with an
    # interaction in the newest span (each with the whole history it has), and the scorer scores the
    # newest span's rows alone, so the students, pruning and QAT go on from the served model with
    # what is new; the older spans' rows still shape every history, the wide part and the negatives.
    # "window": every row of the window, as a start from scratch.
    data: str = "newest_span"

    def __post_init__(self):
        if self.data not in WARM_DATA:
            raise ValueError(f"teacher warm_start.data must be one of {', '.join(WARM_DATA)}, got {self.data!r}")
        if not isinstance(self.phase_one, bool):
            raise ValueError(f"teacher warm_start.phase_one must be true or false, got {self.phase_one!r}")
        for name, least in (("epochs", 1), ("min_epochs", 0), ("patience", 1), ("refit_epochs", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"teacher warm_start.{name} must be an integer >= {least}, got {value!r}")

    def applied_to(self, config):
        """config (a TeacherConfig) with this phase one's epochs, min_epochs, patience and refit_epochs,
        each at most the config's own (a warm start never trains longer than a start from scratch)."""
        return dataclasses.replace(config, epochs=min(self.epochs, config.epochs),
                                   min_epochs=min(self.min_epochs, config.min_epochs),
                                   patience=min(self.patience, config.patience),
                                   refit_epochs=min(self.refit_epochs, config.refit_epochs))


class ArchitectureChanged(ValueError):
    """The earlier teacher's weights do not fit the new one (the message says which)."""


def _shared(model) -> List:
    """The weights that do not depend on the catalog, in the model's own order, then the objective's
    two scalars (trained by cloze only)."""
    scalars = [model.gate, model.wide_scale]
    apart = {id(model.item_id.embeddings), id(model.out_bias), *(id(s) for s in scalars)}
    return [v for v in model.trainable_variables if id(v) not in apart] + scalars


def save(model, path: str) -> None:
    """The teacher's weights as arrays (npz)."""
    arrays = {_ITEM_EMBEDDINGS: np.asarray(model.item_id.embeddings), _OUT_BIAS: np.asarray(model.out_bias),
              _DEEP_WEIGHT: np.asarray(model.deep_weight)}
    arrays.update({_SHARED.format(k): np.asarray(v) for k, v in enumerate(_shared(model))})
    storage.save_npz(path, **arrays)


def restore(model, path: str, earlier_item_ids: Sequence[str], item_ids: Sequence[str]) -> Dict[str, int]:
    """Starts `model` (built for `item_ids`, index i at [i]) from the weights at `path` of a teacher
    built for `earlier_item_ids`. Returns {"weights": copied shared weights, "items_kept": items
    with the earlier row, "items_new": items without one}. ArchitectureChanged when they do not fit."""
    saved = storage.load_npz(path)
    shared = _shared(model)
    count = sum(1 for name in saved if name.startswith("shared_"))
    if count != len(shared):
        raise ArchitectureChanged(f"the earlier teacher has {count} weights besides the catalog's, this one "
                                  f"{len(shared)} (another number of layers?)")
    for k, variable in enumerate(shared):
        value = saved[_SHARED.format(k)]
        if tuple(value.shape) != tuple(variable.shape):
            raise ArchitectureChanged(f"weight {k} ({variable.path}) is {tuple(value.shape)} in the earlier teacher, "
                                      f"{tuple(variable.shape)} here (another width or text model?)")
    embeddings, bias = saved[_ITEM_EMBEDDINGS], saved[_OUT_BIAS]
    if embeddings.shape[1] != model.item_id.embeddings.shape[1] or len(earlier_item_ids) != len(bias):
        raise ArchitectureChanged("the earlier teacher's item embeddings do not fit its catalog or this width")
    for k, variable in enumerate(shared):
        variable.assign(saved[_SHARED.format(k)])

    earlier = {item: index for index, item in enumerate(earlier_item_ids) if index}
    new_rows = np.array([earlier.get(item, 0) for item in item_ids], np.int64)
    new_rows[0] = 0
    kept = new_rows > 0
    rows = np.asarray(model.item_id.embeddings).copy()
    rows[:-1][kept] = embeddings[new_rows[kept]]
    rows[-1] = embeddings[-1]  # the [MASK] token
    rows[0] = embeddings[0]  # padding
    model.item_id.embeddings.assign(rows)
    out_bias = np.asarray(model.out_bias).copy()
    out_bias[kept] = bias[new_rows[kept]]
    model.out_bias.assign(out_bias)
    return {"weights": len(shared), "items_kept": int(kept.sum()), "items_new": int(len(item_ids) - 1 - kept.sum())}


def saved_deep_weight(path: str) -> Optional[float]:
    """The deep weight the teacher saved at `path` ranked with, or None (saved before it was kept)."""
    saved = storage.load_npz(path)
    return float(saved[_DEEP_WEIGHT]) if _DEEP_WEIGHT in saved else None
