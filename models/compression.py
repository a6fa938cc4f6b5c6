"""Compression of the distilled student with TF-MOT: pruning, then pruning-preserving QAT (after
an optional low-rank factorization of its large matrices: CompressionConfig.rank,
models/factorization.py).

Both stages fine-tune the deployed form of the student (models/deployable.py) on the same
distillation objective it was trained with (models/distillation.py: hard loss over the whole
catalog + the soft term against the teacher's scores), plus the same soft term against the
uncompressed student over the whole catalog (`reference_weight`), from the distilled weights.

  prune     `prune`: prune_low_magnitude on every Embedding and the Dense (a factorization's small
            [r, dim] factors excepted: `small_factor`), sparsity rising from 0
            to the target along a PolynomialDecay over the first ramp_epochs epochs, then held;
            then strip_pruning (export always strips).
  quantize  `quantize_aware`: the Dense is annotated (quantize_annotate_layer through clone_model)
            and quantize_apply'd with Default8BitPrunePreserveQuantizeScheme, which keeps its
            zeros. The Embeddings are not in TF-MOT's QAT registry: they get fake-quantized tables
            (EmbeddingWeightsConfig, so that the converter stores them as int8, as it does not
            weight-quantize the rest of a QAT model) and are frozen, because training them would
            un-prune them (75% zeros fell to 0.6% in one epoch). The activation ranges (the query
            into the Dense, the scores out of it) start from the float model's (`calibrate_ranges`),
            not from quantize_apply's [-6, 6].
  The hard loss of both stages leaves the items without interactions out of its softmax (Distiller).

Caveats:
  Pruning counts steps through `training=True`: the fine-tuning calls the model with it, and
  `UpdatePruningStep` must be among the callbacks, or sparsity silently stays 0.
  Sparsity is per layer (each layer reaches the target), measured by `sparsity`.
"""

import time
from typing import Dict, Mapping

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402

from models import deployable, distillation, factorization, student_training  # noqa: E402
from models.student import StudentConfig  # noqa: E402


# The settings live in a module without TensorFlow: the CLI checks a config before importing it.
from models.compression_config import CompressionConfig  # noqa: E402,F401  (re-exported)


class Distiller(tf.keras.Model):
    """Fine-tunes a deployed-form model on the distillation objective (batches of
    student_training.training_data: user_index, history, item_index, candidates, teacher_scores)."""

    def __init__(self, scorer: tf.keras.Model, bins: Mapping[str, np.ndarray], config: StudentConfig,
                 variables=None, reference: tf.keras.Model = None, reference_weight: float = 0.0,
                 known_items: np.ndarray = None):
        super().__init__()
        self.scorer, self.student_config = scorer, config
        self.reference, self.reference_weight = reference, reference_weight
        self.tuned = variables  # None: every trainable variable of the scorer
        self.bins = {name: tf.constant(table) for name, table in bins.items()}
        # The hard loss's softmax runs over the items with interactions only: an item without any
        # (cold, new) is never a positive, so there it could only be pushed down, column by column,
        # undoing the ranking among such items that the uncompressed student gave them (the soft
        # and reference terms still see it).
        self.unknown = None if known_items is None or np.all(known_items[1:]) else \
            tf.constant(~np.asarray(known_items, bool), tf.bool)

    def call(self, batch, training=False):
        """[B, V] scores in the index space (0 masked)."""
        inputs = deployable.inputs_for(self.bins, batch["user_index"], batch["history"])
        return deployable.full_scores(self.scorer(inputs, training=training), distillation.MASKED)

    def train_step(self, batch):
        with tf.GradientTape() as tape:
            loss = self.objective(batch)
        variables = self.scorer.trainable_variables if self.tuned is None else self.tuned
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return {"loss": loss}

    def objective(self, batch):
        """The fine-tuning loss of a batch (alpha hard + beta soft + the reference term)."""
        c = self.student_config
        scores = self(batch, training=True)  # training=True: the pruning wrappers count steps
        positives = tf.cast(batch["item_index"], tf.int64)
        hard = scores if self.unknown is None else tf.where(self.unknown, distillation.MASKED, scores)
        loss = c.alpha * tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positives, logits=hard))
        if c.beta > 0:
            candidates = tf.cast(batch["candidates"], tf.int64)
            student = tf.gather(scores, candidates, batch_dims=1)
            loss += c.beta * distillation.soft(c.soft_loss, student, batch["teacher_scores"], candidates,
                                               c.temperature)
        if self.reference is not None and self.reference_weight > 0:
            inputs = deployable.inputs_for(self.bins, batch["user_index"], batch["history"])
            dense = deployable.full_scores(self.reference(inputs, training=False), distillation.MASKED)
            everything = tf.ones_like(scores, tf.int64)  # every catalog item is a candidate
            loss += self.reference_weight * max(c.beta, 1.0) * distillation.soft(
                c.soft_loss, scores, dense, everything, c.temperature)
        return loss


def _fine_tune(scorer, bins, rows, latest, student_config: StudentConfig, epochs: int, learning_rate: float,
               callbacks=(), variables=None, reference=None, reference_weight=0.0, name="compression",
               known_items=None) -> list:
    """Fine-tunes for `epochs` epochs (capped at student_config.max_epoch_rows rows each, as the
    student's); returns the loss per epoch."""
    distiller = Distiller(scorer, bins, student_config, variables, reference, reference_weight, known_items)
    distiller.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    data = student_training.training_data(rows, latest, student_config)
    steps = student_training.epoch_steps(student_training.row_count(rows), student_config)
    lines = student_training.EpochLines(name, time.monotonic())
    history = distiller.fit(data if steps is None else data.repeat(), epochs=epochs, steps_per_epoch=steps,
                            callbacks=[*callbacks, lines], verbose=0)
    return [round(float(x), 4) for x in history.history["loss"]]


def steps_per_epoch(rows, student_config: StudentConfig) -> int:
    """The fine-tuning's batches per epoch (what the pruning schedule counts in)."""
    count = student_training.row_count(rows)
    return student_training.epoch_steps(count, student_config) or int(np.ceil(count / student_config.batch_size))


def small_factor(layer: tf.keras.layers.Layer) -> bool:
    """The [r, dim] / [dim, r] Dense of a factorized table or kernel (models/factorization.py): left
    unpruned. It holds r x dim numbers (640 of MovieLens' 120,000 at rank 20), so pruning it saves
    nothing, and at a high target it rounds to no weight at all: an all-zero int8 kernel, which
    XNNPACK refuses to prepare ("Node number .. failed to prepare", seen at 99% of a rank-5 [5, 8])."""
    return isinstance(layer, tf.keras.layers.Dense) and layer.name.endswith((factorization.UP, factorization.RANK))


def prune(scorer: tf.keras.Model, bins, rows, latest, student_config: StudentConfig,
          config: CompressionConfig, reference: tf.keras.Model = None, known_items: np.ndarray = None
          ) -> (tf.keras.Model, Dict):
    """Prunes every Embedding and the Dense of a deployed-form model (consumed: its layers are
    trained in place); returns (the stripped model, a log of loss, seconds and sparsity)."""
    end_step = max(1, steps_per_epoch(rows, student_config) * config.ramp_epochs)

    def schedule(target):
        return tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=target, begin_step=0, end_step=end_step,
            frequency=min(config.pruning_frequency, end_step))

    def wrap(layer):
        if small_factor(layer):
            return layer
        if isinstance(layer, tf.keras.layers.Embedding):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule(config.target_sparsity))
        if isinstance(layer, tf.keras.layers.Dense):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule(config.dense_sparsity))
        return layer

    # The wrappers wrap `scorer`'s own layers (TF-MOT's prune_low_magnitude does the same):
    # its weights are the starting point, and fine-tuning changes them in place.
    pruned = tf.keras.models.clone_model(scorer, clone_function=wrap)
    started = time.monotonic()
    loss = _fine_tune(pruned, bins, rows, latest, student_config, config.prune_epochs, config.learning_rate,
                      [tfmot.sparsity.keras.UpdatePruningStep()], reference=reference,
                      reference_weight=config.reference_weight, name="pruning", known_items=known_items)
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    return stripped, {"loss": loss, "seconds": round(time.monotonic() - started, 1), "sparsity": sparsity(stripped)}


class EmbeddingWeightsConfig(tfmot.quantization.keras.QuantizeConfig):
    """8-bit symmetric fake quantization of an Embedding's table (no activations). TF-MOT's
    registry has no Embedding entry; with this one the converter stores the tables as int8 too
    (a model in QAT form gets no post-training weight quantization). Symmetric: 0 stays 0."""

    def get_weights_and_quantizers(self, layer):
        return [(layer.embeddings, tfmot.quantization.keras.quantizers.LastValueQuantizer(
            num_bits=8, symmetric=True, narrow_range=True, per_axis=False))]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        layer.embeddings = quantize_weights[0]

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


def quantize_aware(scorer: tf.keras.Model, bins, rows, latest, student_config: StudentConfig,
                   config: CompressionConfig, reference: tf.keras.Model = None, known_items: np.ndarray = None
                   ) -> (tf.keras.Model, Dict):
    """Pruning-preserving QAT of the Dense layer, fake-quantized embedding tables (frozen); returns
    (QAT model, log). The QAT model is what is exported: TF Serving runs its fake-quant ops."""
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if layer.weights:  # built and filled before wrapping: the wrappers add weights of their own
            copy.build(layer.input_shape)
            copy.set_weights(layer.get_weights())
        if isinstance(layer, tf.keras.layers.Dense):
            return annotate(copy)
        if isinstance(layer, tf.keras.layers.Embedding):
            # Wrapped here rather than annotated: quantize_apply would put a float QuantizeLayer
            # on the ids that feed an annotated layer; a ready QuantizeWrapper is left as it is.
            return tfmot.quantization.keras.QuantizeWrapperV2(copy, EmbeddingWeightsConfig())
        return copy

    with tfmot.quantization.keras.quantize_scope(
            {"EmbeddingWeightsConfig": EmbeddingWeightsConfig}):
        annotated = tf.keras.models.clone_model(scorer, clone_function=clone)
    with tfmot.quantization.keras.quantize_scope(
            {"MaskedMean": deployable.MaskedMean, "Indices": deployable.Indices,
             "EmbeddingWeightsConfig": EmbeddingWeightsConfig, **factorization.CUSTOM_LAYERS}):
        quantized = tfmot.quantization.keras.quantize_apply(
            annotated, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
    # Without histories (models/catalog_extension.py rebuilds the structure to load saved weights
    # into, ranges included) there is nothing to calibrate on.
    ranges = calibrate_ranges(quantized, scorer, bins, latest) if latest is not None else {}
    # Embeddings frozen: only the other layers' variables are tuned. (`trainable = False` does not
    # do it: QuantizeWrapperV2 keeps its own list of the wrapped layer's trainable weights.)
    tuned = [v for layer in quantized.layers if not isinstance(getattr(layer, "layer", layer), tf.keras.layers.Embedding)
             for v in layer.trainable_weights]
    started = time.monotonic()
    loss = _fine_tune(quantized, bins, rows, latest, student_config, config.qat_epochs, config.learning_rate,
                      variables=tuned, reference=reference, reference_weight=config.reference_weight,
                      name="quantization-aware training", known_items=known_items) \
        if config.qat_epochs else []
    share_block_ranges(quantized)
    return quantized, {"loss": loss, "seconds": round(time.monotonic() - started, 1), "sparsity": sparsity(quantized),
                       "calibrated_ranges": ranges}


def share_block_ranges(quantized: tf.keras.Model) -> None:
    """One int8 range for the two blocks of each mixed-dimension matrix (models/factorization.py),
    where the int8 TFLite model joins them in an op that keeps one scale for its inputs and output:

    - the kernel's blocks (the Dense name + HEAD and the Dense name), whose scores are concatenated:
      both output ranges become the union of theirs. With a range each the converter requantized
      the factorized block's scores into the whole block's narrower range and clipped them (1.5 off
      where the scores spanned 6, on the tests' toy model);
    - a table's blocks (the Embedding name + HEAD and the factorized block's Dense name + UP), whose
      vectors are picked by SELECT_V2: the Dense's output range is widened to hold the whole block's
      values. The converter gave the select the Dense's range, and the whole block's vectors were
      clipped to it (MovieLens-100K: values up to 1.32 into a range ending at 1.09), or flattened to
      nothing where the factorized block's outputs were all zero (a range of 1e-6, which XNNPACK
      then refused to prepare)."""
    wrappers = {layer.layer.name: layer for layer in quantized.layers if hasattr(layer, "layer")}
    lows, highs = {low for low, _ in RANGE_VARIABLES}, {high for _, high in RANGE_VARIABLES}

    def ranges(layer):
        return ([v for v in layer.weights if _short(v.name) in lows], [v for v in layer.weights if _short(v.name) in highs])

    for name, head in wrappers.items():
        if not name.endswith(factorization.HEAD):
            continue
        base = name[:-len(factorization.HEAD)]
        if isinstance(head.layer, tf.keras.layers.Embedding) and base + factorization.UP in wrappers:
            table = next(w for w in head.weights if _short(w.name) == "embeddings").numpy()
            low_vars, high_vars = ranges(wrappers[base + factorization.UP])
            low, high = float(min(table.min(), 0.0)), float(max(table.max(), 0.0))
        elif base in wrappers:
            (head_low, head_high), (tail_low, tail_high) = ranges(head), ranges(wrappers[base])
            low_vars, high_vars = head_low + tail_low, head_high + tail_high
            low, high = 0.0, 0.0
        else:
            continue
        if low_vars and high_vars:
            low = min([low] + [float(v.numpy()) for v in low_vars])
            high = max([high] + [float(v.numpy()) for v in high_vars])
            for variable in low_vars:
                variable.assign(low)
            for variable in high_vars:
                variable.assign(high)


RANGE_VARIABLES = (("output_min", "output_max"), ("post_activation_min", "post_activation_max"))
CALIBRATION_USERS = 2048


def calibrate_ranges(quantized: tf.keras.Model, model: tf.keras.Model, bins, latest: np.ndarray,
                     users: int = CALIBRATION_USERS) -> Dict[str, tuple]:
    """Sets the ranges of the QAT model's activation quantizers (the query fed to the Dense and
    the scores it gives) to the min and max of those activations in `model`, the float model it
    was made from, on the histories of up to `users` users; returns {layer: (min, max)}.

    quantize_apply starts every range at [-6, 6] and moves it by a moving average (decay 0.999) in
    training: after the 2 QAT epochs of MovieLens-100K (~260 steps) the ranges were still
    [-4.7, 4.9] where the scores span [-0.26, 1.06], 256 levels 0.037 apart: the int8 model's ties
    cost the cold items (ranked among themselves in a narrow band) 11% of their ndcg@10 (rounding
    the float student's scores to that step alone: 0.2979 -> 0.2597)."""
    rows = np.flatnonzero(latest[:, 0] > 0)
    rows = rows[np.linspace(0, len(rows) - 1, min(users, len(rows))).astype(np.int64)] if len(rows) else rows
    names = {name for pair in RANGE_VARIABLES for name in pair}
    layers = {layer.layer.name: layer for layer in quantized.layers if hasattr(layer, "layer")
              and any(_short(w.name) in names for w in layer.weights)}
    wanted = [layer for layer in model.layers if layer.name in layers]
    if not wanted or not len(rows):
        return {}
    # A layer of a cloned model (strip_pruning reuses the inner layers) has a node per model it is
    # in: the latest is `model`'s.
    probe = tf.keras.Model(model.inputs, [layer.get_output_at(-1) for layer in wanted])
    bins = {name: tf.constant(table) for name, table in bins.items()}
    outputs = probe(deployable.inputs_for(bins, tf.constant(rows), tf.constant(latest[rows])))
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    found = {}
    for layer, values in zip(wanted, outputs):
        low, high = float(tf.reduce_min(values)), float(tf.reduce_max(values))
        for variable in layers[layer.name].weights:
            name = _short(variable.name)
            for low_name, high_name in RANGE_VARIABLES:
                if name == low_name:
                    variable.assign(min(low, 0.0))
                elif name == high_name:
                    variable.assign(max(high, 0.0))
        found[layer.name] = (round(low, 4), round(high, 4))
    return found


def _short(name: str) -> str:
    """"quant_scores/post_activation_min:0" -> "post_activation_min"."""
    return name.split("/")[-1].split(":")[0]


def sparsity(model: tf.keras.Model) -> Dict[str, float]:
    """Share of exact zeros per weight matrix (embeddings and kernels) and over all of them."""
    shares, zeros, total = {}, 0, 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # pruning and quantization wrappers
        kind = "embeddings" if isinstance(inner, tf.keras.layers.Embedding) else "kernel"
        # The variable itself: a quantize wrapper replaces the attribute by its fake-quantized tensor.
        found = [w for w in layer.weights if _short(w.name) == kind]
        if not found:
            continue
        values = found[0].numpy()
        shares[inner.name] = round(float(np.mean(values == 0)), 4)
        zeros, total = zeros + int(np.sum(values == 0)), total + values.size
    shares["all"] = round(zeros / max(total, 1), 4)
    return shares

