"""Training and export of the teacher (models/teacher.py), outside TFX's plumbing.

One training example is one user: the user's training items, most recent first. Each epoch draws
for every user a fresh corruption, as BERT's masked-LM pretraining does:
  - the k most recent items are cut off (k uniform in [0, future_share x n]): the "next items";
  - mask_share of the remaining sequence is replaced by [MASK].
Position 0 (always [MASK]) predicts the cut and masked items (a multinomial likelihood over the
catalog, as Mult-VAE's), on top of the wide part's scores of what remains; each masked position
predicts its own item (cloze, BERT4Rec), weighted by cloze_weight. Early stopping on ndcg@10 of
the validation split (ranked with the training items removed), best epoch kept.
"""

import time
from typing import Dict, Optional

import numpy as np

from models import teacher as teacher_lib


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


def fit(model, latest_train: np.ndarray, evaluator, config: teacher_lib.TeacherConfig,
        half_life: Optional[float], log=print, log_dir: Optional[str] = None) -> Dict:
    """Trains the BERT part (no-op without it); returns {"loss", "val_ndcg@10", "epochs", "seconds"}.
    With log_dir, TensorBoard gets each epoch's loss and validation ndcg@10."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(log_dir) if log_dir else None

    rng = np.random.default_rng(config.seed)
    started = time.monotonic()

    def validation() -> float:
        if evaluator is None:
            return 0.0
        return float(evaluator.evaluate(lambda u: rank(latest_train[u], model.wide_train), ks=(10,))["ndcg@10"])

    def rank(history, wide):
        return np.concatenate([rank_batch(tf.constant(history[s:s + 256]), wide).numpy()
                               for s in range(0, len(history), 256)])

    rank_batch = tf.function(model.rank, reduce_retracing=True)
    curve, losses = [round(validation(), 4)], []
    if not config.use_bert:
        return {"loss": [], "val_ndcg@10": curve, "epochs": 0, "seconds": round(time.monotonic() - started, 1)}

    import keras

    optimizer = keras.optimizers.Adam(config.learning_rate)
    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(inputs, targets, cloze, rows):
        with tf.GradientTape() as tape:
            hidden = model.encode(inputs, training=True)
            logits = model.wide_logits(rows, model.wide_train) + model.gate * model.deep_logits(hidden[:, 0])
            logits -= 1e9 * tf.one_hot(0, model.num_items)
            counts = tf.reduce_sum(targets, axis=1)
            per_user = -tf.reduce_sum(targets * tf.nn.log_softmax(logits), axis=1) / tf.maximum(counts, 1.0)
            loss = tf.reduce_sum(per_user) / tf.maximum(tf.reduce_sum(tf.cast(counts > 0, tf.float32)), 1.0)
            where = tf.where(cloze > 0)
            cloze_logits = model.deep_logits(tf.gather_nd(hidden, where))
            cloze_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.gather_nd(cloze, where), cloze_logits)
            loss += config.cloze_weight * tf.reduce_mean(cloze_loss) if config.cloze_weight else 0.0
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    users = np.flatnonzero(latest_train[:, 0] > 0)
    best, best_weights, waited = curve[0], model.get_weights(), 0
    for epoch in range(config.epochs):
        # Users of similar history length share a batch (less padding); batches in random order.
        order = users[np.argsort((latest_train[users] > 0).sum(axis=1) + rng.random(len(users)) * 8)]
        batches = [order[s:s + config.batch_size] for s in range(0, len(order), config.batch_size)]
        total = 0.0
        for index in rng.permutation(len(batches)):
            batch = corrupted_batch(latest_train, batches[index], config, model.num_items, rng, half_life)
            total += float(step(*(tf.constant(a) for a in batch)))
        losses.append(round(total / max(len(batches), 1), 4))
        curve.append(round(validation(), 4))
        log(f"teacher epoch {epoch + 1}: loss {losses[-1]:.4f}, validation ndcg@10 {curve[-1]:.4f}, "
            f"{time.monotonic() - started:.0f} s")
        if writer is not None:
            with writer.as_default():
                tf.summary.scalar("loss", losses[-1], step=epoch + 1)
                tf.summary.scalar("val_ndcg@10", curve[-1], step=epoch + 1)
            writer.flush()
        if curve[-1] > best:
            best, best_weights, waited = curve[-1], model.get_weights(), 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    model.set_weights(best_weights)
    return {"loss": losses, "val_ndcg@10": curve, "epochs": len(losses),
            "best_epoch": int(np.argmax(curve)), "seconds": round(time.monotonic() - started, 1)}


def export(model, path: str, history: int) -> None:
    """A SavedModel (tf.saved_model.load, no Keras needed) with three endpoints:

    score(user: int64 [B], history: int64 [B, history]) -> float32 [B, num_items]: the teacher with
      its wide part refit on train + eval (for ranking test users); the user index is not read (the
      history says everything), it keeps the signature every scorer of the project shares.
    score_train(user, history): the same with the wide part of the training split (soft labels).
    item_embeddings() -> float32 [num_items, dim] (hints).
    index 0 of the items is OOV and scores -1e9.
    """
    import keras
    import tensorflow as tf

    def score(user, history_items):
        del user
        return model.rank(history_items, model.wide_final)

    def score_train(user, history_items):
        del user
        return model.rank(history_items, model.wide_train)

    def item_embeddings():
        return model.item_vectors(tf.range(model.num_items))

    spec = [tf.TensorSpec([None], tf.int64, name="user"), tf.TensorSpec([None, history], tf.int64, name="history")]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("score", score, input_signature=spec)
    archive.add_endpoint("score_train", score_train, input_signature=spec)
    archive.add_endpoint("item_embeddings", item_embeddings, input_signature=[])
    archive.write_out(path, verbose=False)


def head_params(model) -> int:
    """The teacher's own parameters: the encoder's and embeddings' trainable weights and the wide
    part's B (its off-diagonal entries; train + eval refit counted once)."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return trainable + model.num_items * (model.num_items - 1)
