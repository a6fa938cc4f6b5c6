"""Training and export of the teacher (models/teacher.py), outside TFX's plumbing.

One training example is one user: the user's training items, most recent first.
  objective "match_wide": the [MASK] query in front of the user's latest items; the target is the
      wide part's score of every catalog item from the user's whole history, standardised per user;
      the loss their mean squared difference to the encoder's scores.
  objective "cloze": each epoch draws for every user a fresh corruption, as BERT's masked-LM
      pretraining does: the k most recent items are cut off (k uniform in [0, future_share x n]),
      mask_share of the remaining sequence is replaced by [MASK]. Position 0 predicts the cut and
      masked items (a multinomial likelihood over the catalog, as Mult-VAE's) on top of the wide
      part's scores of what remains; each masked position predicts its own item (cloze, BERT4Rec),
      weighted by cloze_weight.
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


def corrupted_batch(latest: np.ndarray, users: np.ndarray, config: teacher_lib.TeacherConfig, num_items: int,
                    rng: np.random.Generator, half_life: Optional[float]):
    """latest [num_users, H] -> (sequence [b, S'+1], targets [b, I], cloze [b, S'+1], wide rows [b, I])."""
    full = latest[users]
    lengths = (full > 0).sum(axis=1)
    cut = rng.integers(0, np.floor(config.future_share * lengths).astype(np.int64) + 1)
    targets = np.zeros([len(users), num_items], np.float32)
    remaining = np.zeros_like(full)
    for row, k in enumerate(cut):
        targets[row, full[row, :k]] = 1.0
        remaining[row, :full.shape[1] - k] = full[row, k:]
    sequence = remaining[:, :config.sequence]
    width = max(int((sequence > 0).sum(axis=1).max(initial=0)), 1)
    sequence = sequence[:, :width]
    masked = (rng.random(sequence.shape) < config.mask_share) & (sequence > 0)
    np.put_along_axis(targets, np.where(masked, sequence, 0), 1.0, axis=1)
    targets[:, 0] = 0.0
    rows = teacher_lib.weighted_rows(remaining, num_items, half_life)
    rows *= 1.0 - targets  # held-out items are not part of the input
    query = np.full([len(users), 1], num_items, np.int64)  # the [MASK] token's index
    inputs = np.concatenate([query, np.where(masked, num_items, sequence)], axis=1)
    cloze = np.concatenate([np.zeros([len(users), 1], np.int64), np.where(masked, sequence, 0)], axis=1)
    return inputs, targets, cloze, rows


def match_wide_batch(latest: np.ndarray, users: np.ndarray, config: teacher_lib.TeacherConfig, num_items: int,
                     half_life: Optional[float]):
    """latest [num_users, H] -> (sequence [b, S'+1]: [MASK] then the latest items, rows [b, I]: the
    wide part's input, the recency-weighted whole history). No corruption: the encoder reads the
    user's items and learns to score the catalog as the wide part does from them."""
    full = latest[users]
    sequence = full[:, :config.sequence]
    width = max(int((sequence > 0).sum(axis=1).max(initial=0)), 1)
    query = np.full([len(users), 1], num_items, np.int64)
    return np.concatenate([query, sequence[:, :width]], axis=1), teacher_lib.weighted_rows(full, num_items, half_life)


def train_steps(model, config: teacher_lib.TeacherConfig, half_life: Optional[float]):
    """One epoch's training function (histories, rng) -> mean batch loss, for config.objective, under
    the model's strategy (`model.distribute_strategy`), with an Adam optimizer of its own (loss-scaled
    when the model computes in float16)."""
    import keras
    import tensorflow as tf

    strategy = model.distribute_strategy
    with strategy.scope():
        optimizer = keras.optimizers.Adam(config.learning_rate)
        if model.compute_dtype == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    variables = model.trainable_variables
    replicas = strategy.num_replicas_in_sync

    def apply(tape, scaled_loss):
        """scaled_loss: optimizer.scale_loss(loss), taken on the tape (the identity without loss
        scaling). The optimizer sums the replicas' gradients (all-reduce) and applies them."""
        optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))

    def cloze_replica(inputs, targets, cloze, rows, users, masked):
        """users: the global batch's users with held-out items (at least 1), masked: its masked positions."""
        with tf.GradientTape() as tape:
            hidden = model.encode(inputs, training=True)
            logits = model.wide_logits(rows) + model.gate * model.deep_logits(hidden[:, 0])
            logits -= 1e9 * tf.one_hot(0, model.num_items)
            counts = tf.reduce_sum(targets, axis=1)
            per_user = -tf.reduce_sum(targets * tf.nn.log_softmax(logits), axis=1) / tf.maximum(counts, 1.0)
            loss = tf.reduce_sum(per_user) / users
            where = tf.where(cloze > 0)
            cloze_logits = model.deep_logits(tf.gather_nd(hidden, where))
            cloze_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.gather_nd(cloze, where), cloze_logits)
            loss += config.cloze_weight * (tf.reduce_sum(cloze_loss) / masked) if config.cloze_weight else 0.0
            scaled = optimizer.scale_loss(loss)
        apply(tape, scaled)
        return loss

    def match_replica(inputs, rows, cells):
        """cells: the global batch's number of scores (users x (num_items - 1))."""
        target = tf.stop_gradient(teacher_lib.standardize(model.wide_logits(rows)))[:, 1:]
        known = model.known[1:model.num_items]  # unknown items' all-zero wide scores are no target
        with tf.GradientTape() as tape:
            deep = model.deep_logits(model.encode(inputs, training=True)[:, 0])[:, 1:]
            loss = tf.reduce_sum(tf.square(deep - target) * known) / cells
            scaled = optimizer.scale_loss(loss)
        apply(tape, scaled)
        return loss

    # Without a strategy (the default one) the replica functions run as they are: strategy.run and
    # per-replica values cost 40 ms a step here (MovieLens-100K's 60 epochs: 174 s instead of 138 s).
    direct = strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy()

    @tf.function(reduce_retracing=True)
    def cloze_step(inputs, targets, cloze, rows, users, masked):
        if direct:
            return cloze_replica(inputs, targets, cloze, rows, users, masked)
        losses = strategy.run(cloze_replica, args=(inputs, targets, cloze, rows, users, masked))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    @tf.function(reduce_retracing=True)
    def match_step(inputs, rows, cells):
        if direct:
            return match_replica(inputs, rows, cells)
        losses = strategy.run(match_replica, args=(inputs, rows, cells))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def shards(*arrays):
        """numpy [b, ...] arrays -> per-replica tensors: replica r gets rows [r b / R, (r + 1) b / R)."""
        if direct:
            return tuple(tf.constant(a) for a in arrays)

        def of_replica(context):
            n, r = len(arrays[0]), context.replica_id_in_sync_group
            return tuple(tf.constant(a[r * n // replicas:(r + 1) * n // replicas]) for a in arrays)

        return strategy.experimental_distribute_values_from_function(of_replica)

    def epoch(latest: np.ndarray, rng: np.random.Generator) -> float:
        """One pass over every user with a history (a random config.max_epoch_users of them when there
        are more); returns the mean batch loss."""
        users = np.flatnonzero(latest[:, 0] > 0)
        if len(users) > config.max_epoch_users:  # a share of the users (the draw only then: same rng otherwise)
            users = np.sort(rng.choice(users, size=config.max_epoch_users, replace=False))
        if config.objective == "match_wide":  # random batches (length-sorted ones: 0.4834 vs 0.49, docs/teacher.md)
            order = rng.permutation(users)
        else:  # users of similar history length share a batch (less padding); batches in random order
            order = users[np.argsort((latest[users] > 0).sum(axis=1) + rng.random(len(users)) * 8)]
        batches = [order[s:s + config.batch_size] for s in range(0, len(order), config.batch_size)]
        total = 0.0
        for index in rng.permutation(len(batches)):
            if config.objective == "match_wide":
                inputs, rows = match_wide_batch(latest, batches[index], config, model.num_items, half_life)
                cells = np.float32(len(inputs) * (model.num_items - 1))
                total += float(match_step(*shards(inputs, rows), tf.constant(cells)))
            else:
                batch = corrupted_batch(latest, batches[index], config, model.num_items, rng, half_life)
                targets, cloze = batch[1], batch[2]
                users = np.float32(max(int((targets.sum(axis=1) > 0).sum()), 1))
                masked = np.float32(max(int((cloze > 0).sum()), 1))
                total += float(cloze_step(*shards(*batch), tf.constant(users), tf.constant(masked)))
        return round(total / max(len(batches), 1), 4)

    return epoch


def validator(model, latest: np.ndarray, evaluator, config: teacher_lib.TeacherConfig):
    """A function () -> (validation ndcg@10, the deep weight it was reached with): with match_wide and
    deep_weight -1, the best of DEEP_WEIGHT_GRID; otherwise the model's own. (0, 0) without eval.
    The wide part does not train: its scores are computed once, the encoder's at every call."""
    import tensorflow as tf

    if evaluator is None:  # nothing to pick on: the configured weight, or the one MovieLens picked
        weight = config.deep_weight if config.deep_weight != -1.0 else teacher_lib.DEFAULT_DEEP_WEIGHT
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

    weights = (teacher_lib.DEEP_WEIGHT_GRID if config.objective == "match_wide" and config.use_bert
               and config.deep_weight == -1.0 else (float(np.asarray(model.deep_weight)),))
    found = []
    for weight in weights:
        ranked = np.asarray(model.combine(tf.constant(wide), tf.constant(deep), weight))
        found.append((round(float(evaluator.evaluate(lambda u: ranked[position[u]], ks=(10,))["ndcg@10"]), 4),
                      weight))
    return max(found, key=lambda f: (f[0], -f[1]))


def fit(model, latest_train: np.ndarray, evaluator, config: teacher_lib.TeacherConfig,
        half_life: Optional[float], log=report_progress, log_dir: Optional[str] = None) -> Dict:
    """Phase one: trains the BERT part (no-op without it) with early stopping on the validation split
    after config.min_epochs (best epoch from min_epochs on kept, and with it the deep weight picked
    at that epoch). Returns {"loss",
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
        losses.append(epoch(latest_train, rng))
        score, weight = validate()
        curve.append(score)
        weights.append(weight)
        log(f"teacher epoch {n + 1}: loss {losses[-1]:.4f}, validation ndcg@10 {curve[-1]:.4f}"
            + (f" (deep weight {weight})" if config.objective == "match_wide" else "")
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
    if config.objective == "match_wide":
        model.deep_weight.assign(weights[best])
    return {"loss": losses, "val_ndcg@10": curve, "epochs": len(losses), "best_epoch": best,
            "deep_weight": float(weights[best]), "seconds": round(time.monotonic() - started, 1)}


def refit(model, phase_one, latest_known: np.ndarray, config: teacher_lib.TeacherConfig,
          half_life: Optional[float], epochs: int, log=report_progress) -> Dict:
    """The refit: `model` (built on B of train + eval) gets phase one's deep weight and its encoder:
    with match_wide, config.refit "scratch" trains it again from its initial weights on the train +
    eval histories for `epochs` (phase one's best; no validation left to stop on), "warm" goes on
    from phase one's weights for config.refit_epochs; "none" (and cloze) keeps phase one's.
    Returns {"epochs", "loss", "seconds"}."""
    started = time.monotonic()
    model.deep_weight.assign(float(np.asarray(phase_one.deep_weight)))
    retrain = config.use_bert and config.objective == "match_wide" and config.refit != "none"
    if not retrain or config.refit == "warm":
        for mine, trained in zip(model.trainable_variables, phase_one.trainable_variables):
            mine.assign(trained)
        model.gate.assign(float(np.asarray(phase_one.gate)))
        model.wide_scale.assign(float(np.asarray(phase_one.wide_scale)))
    epochs = 0 if not retrain else config.refit_epochs if config.refit == "warm" else epochs
    rng = np.random.default_rng(config.seed)
    epoch, losses = train_steps(model, config, half_life), []
    for n in range(epochs):
        losses.append(epoch(latest_known, rng))
        log(f"teacher refit epoch {n + 1}/{epochs}: loss {losses[-1]:.4f}, {time.monotonic() - started:.0f} s")
    return {"epochs": epochs, "loss": losses, "seconds": round(time.monotonic() - started, 1)}


def export(model, final, path: str, history: int) -> None:
    """A SavedModel (tf.saved_model.load, no Keras needed) with three endpoints:

    score(user: int64 [B], history: int64 [B, history]) -> float32 [B, num_items]: `final`, the
      teacher refit on train + eval (for ranking test users); the user index is not read (the
      history says everything), it keeps the signature every scorer of the project shares.
    score_train(user, history): `model`, phase one, trained on the training split (soft labels).
    item_embeddings() -> float32 [num_items, dim]: phase one's (hints).
    index 0 of the items is OOV and scores -1e9.
    A teacher trained in mixed precision is switched to float32 first (teacher.to_float32): the
    SavedModel is the same float32 graph however it was trained.
    """
    import keras
    import tensorflow as tf

    teacher_lib.to_float32(model)
    teacher_lib.to_float32(final)

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
    archive.track(model)
    archive.track(final)
    archive.add_endpoint("score", score, input_signature=spec)
    archive.add_endpoint("score_train", score_train, input_signature=spec)
    archive.add_endpoint("item_embeddings", item_embeddings, input_signature=[])
    archive.write_out(path, verbose=False)


def head_params(model) -> int:
    """The teacher's own parameters (what one endpoint runs): the encoder's and embeddings' trainable
    weights and the wide part's B (its off-diagonal entries; phase one and the refit counted once)."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return trainable + model.num_items * (model.num_items - 1)
