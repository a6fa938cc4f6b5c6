"""Training and export of the teacher (models/teacher.py), outside TFX's plumbing.

One training example is one user: the user's training items, most recent first. What differs
between the objectives (the batches, the loss, the order of the users, the deep weight's pick) is
theirs (models/teacher_objectives.py); this module runs the loop, the validation and the export.
  objective "match_wide": the [MASK] query in front of the user's latest items; the target is the
      wide part's score of every catalog item from the user's whole history, standardised per user;
      the loss their mean squared difference to the encoder's scores.
  objective "cloze": each epoch draws for every user a fresh corruption, as BERT's masked-LM
      pretraining does: the k most recent items are cut off (k uniform in [0, cloze.future_share x n]),
      cloze.mask_share of the remaining sequence is replaced by [MASK]. Position 0 predicts the cut and
      masked items (a multinomial likelihood over the catalog, as Mult-VAE's) on top of the wide
      part's scores of what remains; each masked position predicts its own item (cloze, BERT4Rec),
      weighted by cloze.cloze_weight.
Early stopping on ndcg@10 of the validation split (ranked with the training items removed), best
epoch kept; then the refit on train + eval (`refit`).

Distribution (config.distribute, models/distribute.py): the model's variables live under its
strategy (models/teacher.py), and every step runs through `strategy.run`: each replica gets a
contiguous slice of the global batch (config.batch_size users), its loss is its share of the global
batch's loss (sums over its rows divided by the global batch's counts, which are computed from the
whole batch beforehand), the optimizer sums the replicas' gradients and `strategy.reduce` sums their
losses. With one replica ("default", or "mirrored" on one device) that is today's arithmetic, bit for
bit. Under multi_worker_mirrored every worker builds the same global batches (same seed, same data)
and takes its replicas' slices; validation runs on every worker on its own (the weights are the same
everywhere, so are the early-stopping decisions).

Caveat, several replicas (Keras 3.15): the item embeddings' gradients are IndexedSlices (gathers), and
Keras 3's Adam squares them slice by slice for its second moment (a sum of squares where dense Adam
squares the sum). Each replica contributes its own slices, so the embeddings' updates differ a little
from one process training on the same global batches (the tiny test teacher, 2 workers: first-epoch
loss 1.0265 against 1.0318; with SGD every variable's step agrees to 1e-8). One replica is unaffected.
"""

import time
from typing import Dict, Optional, Tuple

import numpy as np

from models import teacher as teacher_lib
from models.foundation.progress import report_progress


def train_steps(model, config: teacher_lib.TeacherConfig, half_life: Optional[float]):
    """One epoch's training function (histories, rng) -> mean batch loss, for config's objective
    (its batches and its loss, models/teacher_objectives.py), under the model's strategy
    (`model.distribute_strategy`), with an Adam optimizer of its own (loss-scaled when the model
    computes in float16)."""
    import keras
    import tensorflow as tf

    objective = config.chosen_objective
    strategy = model.distribute_strategy
    with strategy.scope():
        optimizer = keras.optimizers.Adam(config.learning_rate)
        if model.compute_dtype == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    variables = model.trainable_variables
    replicas = strategy.num_replicas_in_sync

    def step(loss):
        """Minimises loss() (the replica's share of the global batch's loss) and returns its value:
        the tape records loss() and optimizer.scale_loss (the identity without loss scaling); the
        optimizer sums the replicas' gradients (all-reduce) and applies them."""
        with tf.GradientTape() as tape:
            value = loss()
            scaled = optimizer.scale_loss(value)
        optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return value

    def replica(*args):
        return objective.train_replica(model, step, *args)

    # Without a strategy (the default one) the replica function runs as it is: strategy.run and
    # per-replica values cost 40 ms a step here (MovieLens-100K's 60 epochs: 174 s instead of 138 s).
    direct = strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy()

    @tf.function(reduce_retracing=True)
    def train_step(*args):
        if direct:
            return replica(*args)
        losses = strategy.run(replica, args=args)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def shards(*arrays):
        """numpy [b, ...] arrays -> per-replica tensors: replica r gets rows [r b / R, (r + 1) b / R)."""
        if direct:
            return tuple(tf.constant(a) for a in arrays)

        def of_replica(context):
            n, r = len(arrays[0]), context.replica_id_in_sync_group
            return tuple(tf.constant(a[r * n // replicas:(r + 1) * n // replicas]) for a in arrays)

        return strategy.experimental_distribute_values_from_function(of_replica)

    def epoch(latest: np.ndarray, rng: np.random.Generator, only: Optional[np.ndarray] = None) -> float:
        """One pass over every user with a history (those of the boolean mask `only` when given; a
        random config.max_epoch_users of them when there are more); returns the mean batch loss."""
        users = np.flatnonzero((latest[:, 0] > 0) & (True if only is None else only))
        if len(users) > config.max_epoch_users:  # a share of the users (the draw only then: same rng otherwise)
            users = np.sort(rng.choice(users, size=config.max_epoch_users, replace=False))
        order = objective.order(users, latest, rng)
        batches = [order[s:s + config.batch_size] for s in range(0, len(order), config.batch_size)]
        total = 0.0
        for index in rng.permutation(len(batches)):
            arrays, scalars = objective.batch(latest, batches[index], config.sequence, model.num_items, rng,
                                              half_life)
            total += float(train_step(*shards(*arrays), *(tf.constant(s) for s in scalars)))
        return round(total / max(len(batches), 1), 4)

    return epoch


def validator(model, latest: np.ndarray, evaluator, config: teacher_lib.TeacherConfig):
    """A function () -> (validation ndcg@10, the deep weight it was reached with): the best of the
    objective's candidates (match_wide with deep_weight None: DEEP_WEIGHT_GRID; otherwise the
    model's own). Without eval, (0, the objective's unvalidated deep weight; 0 without BERT).
    The wide part does not train: its scores are computed once, the encoder's at every call."""
    import tensorflow as tf

    if evaluator is None:  # nothing to pick on: the configured weight, or the one MovieLens picked
        weight = config.chosen_objective.unvalidated_deep_weight()
        return lambda: (0.0, weight if config.use_bert else 0.0)
    # Scores of the evaluated users only ([R, num_items], R <= config.validation_users), not of all.
    users, position = evaluated_rows(evaluator, len(latest))
    padded = np.zeros([-(-len(users) // 256) * 256, latest.shape[1]], np.int64)  # one traced shape
    padded[:len(users)] = latest[users]

    def batched(traced):
        return np.concatenate([np.asarray(traced(tf.constant(padded[s:s + 256])))
                               for s in range(0, len(padded), 256)])[:len(users)]

    wide = batched(tf.function(lambda history: model.wide_logits(model.history_rows(history))))
    if not config.use_bert:
        return lambda: best_weight(model, wide, np.zeros_like(wide), evaluator, config, position)
    deep = tf.function(lambda history: model.deep_logits(model.deep_query(history)))
    return lambda: best_weight(model, wide, batched(deep), evaluator, config, position)


def evaluated_rows(evaluator, num_users: int) -> Tuple[np.ndarray, np.ndarray]:
    """(the evaluator's users [R], position [num_users]: the row of each of them among those R)."""
    users = np.asarray(evaluator.users, np.int64)
    position = np.zeros(num_users, np.int64)
    position[users] = np.arange(len(users))
    return users, position


def best_weight(model, wide: np.ndarray, deep: np.ndarray, evaluator, config, position: np.ndarray
                ) -> Tuple[float, float]:
    """wide, deep: [R, num_items] scores of the evaluator's users; position: user -> row."""
    import tensorflow as tf

    weights = config.chosen_objective.weight_candidates(model)
    found = []
    for weight in weights:
        ranked = np.asarray(model.combine(tf.constant(wide), tf.constant(deep), weight))
        found.append((round(float(evaluator.evaluate(lambda u: ranked[position[u]], ks=(10,))["ndcg@10"]), 4),
                      weight))
    return max(found, key=lambda f: (f[0], -f[1]))


def fit(model, latest_train: np.ndarray, evaluator, config: teacher_lib.TeacherConfig,
        half_life: Optional[float], log=report_progress, log_dir: Optional[str] = None,
        users: Optional[np.ndarray] = None) -> Dict:
    """Phase one: trains the BERT part (no-op without it) with early stopping on the validation split
    after config.min_epochs (best epoch from min_epochs on kept, and with it the deep weight picked
    at that epoch). users: a boolean [num_users] mask of the users trained on (None: every user with
    a history; validation is the same either way). Returns {"loss",
    "val_ndcg@10", "epochs", "best_epoch", "deep_weight", "seconds"}. With log_dir, TensorBoard gets
    each epoch's loss and validation ndcg@10."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(log_dir) if log_dir else None
    rng = np.random.default_rng(config.seed)
    started = time.monotonic()
    validate = validator(model, latest_train, evaluator, config)
    score, weight = validate()
    curve, losses, weights = [score], [], [weight]
    if not config.use_bert:
        return {"loss": [], "val_ndcg@10": curve, "epochs": 0, "best_epoch": 0, "deep_weight": 0.0,
                "seconds": round(time.monotonic() - started, 1)}

    epoch = train_steps(model, config, half_life)
    best, best_weights, waited = 0, model.get_weights(), 0
    for n in range(config.epochs):
        losses.append(epoch(latest_train, rng, users))
        score, weight = validate()
        curve.append(score)
        weights.append(weight)
        log(f"teacher epoch {n + 1}: loss {losses[-1]:.4f}, validation ndcg@10 {curve[-1]:.4f}"
            + (f" (deep weight {weight})" if config.chosen_objective.ranks_with_deep_weight else "")
            + f", {time.monotonic() - started:.0f} s")
        if writer is not None:
            with writer.as_default():
                tf.summary.scalar("loss", losses[-1], step=n + 1)
                tf.summary.scalar("val_ndcg@10", curve[-1], step=n + 1)
            writer.flush()
        if evaluator is None or n + 1 <= config.min_epochs or curve[-1] > curve[best]:
            best, best_weights, waited = n + 1, model.get_weights(), 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    model.set_weights(best_weights)
    if config.chosen_objective.ranks_with_deep_weight:
        model.deep_weight.assign(weights[best])
    return {"loss": losses, "val_ndcg@10": curve, "epochs": len(losses), "best_epoch": best,
            "deep_weight": float(weights[best]), "seconds": round(time.monotonic() - started, 1)}


def refit(model, phase_one, latest_known: np.ndarray, config: teacher_lib.TeacherConfig,
          half_life: Optional[float], epochs: int, log=report_progress, users: Optional[np.ndarray] = None) -> Dict:
    """The refit: `model` (built on B of train + eval) gets phase one's deep weight and its encoder:
    with match_wide, config.refit "scratch" trains it again from its initial weights on the train +
    eval histories for `epochs` (phase one's best; no validation left to stop on), "warm" goes on
    from phase one's weights for config.refit_epochs; "none" (and cloze: its `refit_trains` is
    false) keeps phase one's. users: as fit's.
    Returns {"epochs", "loss", "seconds"}."""
    started = time.monotonic()
    model.deep_weight.assign(float(np.asarray(phase_one.deep_weight)))
    retrain = config.use_bert and config.chosen_objective.refit_trains and config.refit != "none"
    if not retrain or config.refit == "warm":
        for mine, trained in zip(model.trainable_variables, phase_one.trainable_variables):
            mine.assign(trained)
        model.gate.assign(float(np.asarray(phase_one.gate)))
        model.wide_scale.assign(float(np.asarray(phase_one.wide_scale)))
    epochs = 0 if not retrain else config.refit_epochs if config.refit == "warm" else epochs
    return _train_epochs(model, latest_known, config, half_life, epochs, users, "teacher refit epoch", log, started)


def go_on(model, latest_known: np.ndarray, config: teacher_lib.TeacherConfig, half_life: Optional[float],
          epochs: int, log=report_progress, users: Optional[np.ndarray] = None) -> Dict:
    """A warm start without phase one (WarmStart.phase_one false): `model`, started from the served
    teacher, trains on the train + eval histories for `epochs` epochs (none without BERT), with no
    validation. users: as fit's. Returns {"epochs", "loss", "seconds"}."""
    epochs = epochs if config.use_bert else 0
    return _train_epochs(model, latest_known, config, half_life, epochs, users, "teacher warm epoch", log,
                         time.monotonic())


def _train_epochs(model, latest: np.ndarray, config: teacher_lib.TeacherConfig, half_life: Optional[float],
                  epochs: int, users: Optional[np.ndarray], label: str, log, started: float) -> Dict:
    rng = np.random.default_rng(config.seed)
    epoch, losses = train_steps(model, config, half_life), []
    for n in range(epochs):
        losses.append(epoch(latest, rng, users))
        log(f"{label} {n + 1}/{epochs}: loss {losses[-1]:.4f}, {time.monotonic() - started:.0f} s")
    return {"epochs": epochs, "loss": losses, "seconds": round(time.monotonic() - started, 1)}


def export(model, final, path: str, history: int) -> None:
    """A SavedModel (tf.saved_model.load, no Keras needed) with three endpoints:

    score(user: int64 [B], history: int64 [B, history]) -> float32 [B, num_items]: `final`, the
      teacher refit on train + eval (for ranking test users); the user index is not read (the
      history says everything), it keeps the signature every scorer of the project shares.
    score_train(user, history): `model`, phase one, trained on the training split (soft labels); the
      same as score when a warm start skipped phase one (`model` is `final`).
    item_embeddings() -> float32 [num_items, dim]: phase one's (hints).
    index 0 of the items is OOV and scores -1e9.
    A teacher trained in mixed precision is switched to float32 first (SequenceTeacher.
    compute_in_float32): the SavedModel is the same float32 graph however it was trained.
    """
    import keras
    import tensorflow as tf

    model.compute_in_float32()
    final.compute_in_float32()

    def score(user, history_items):
        del user
        return final.rank(history_items)

    def score_train(user, history_items):
        del user
        return model.rank(history_items)

    def item_embeddings():
        return model.item_vectors(tf.range(model.num_items))

    spec = [tf.TensorSpec([None], tf.int64, name="user"), tf.TensorSpec([None, history], tf.int64, name="history")]
    archive = keras.export.ExportArchive()
    for tracked in {id(m): m for m in (model, final)}.values():  # one model when phase one was skipped
        archive.track(tracked)
    archive.add_endpoint("score", score, input_signature=spec)
    archive.add_endpoint("score_train", score_train, input_signature=spec)
    archive.add_endpoint("item_embeddings", item_embeddings, input_signature=[])
    archive.write_out(path, verbose=False)


def head_params(model) -> int:
    """The teacher's own parameters (what one endpoint runs): the encoder's and embeddings' trainable
    weights and the wide part's B (its off-diagonal entries; phase one and the refit counted once)."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return trainable + model.num_items * (model.num_items - 1)
