"""Names, shapes and sizes of the deployed models' interfaces (docs/design.md, "Outputs").

One place for the exporters (models/serving_export.py, models/mobile_export.py), the evaluator,
and the clients (serving/), so that a renamed input breaks a test instead of a user.
"""

# How many items a deployed model returns per query, best first. 100 rather than 10: a client
# drops what the user has already seen (possibly dozens of items) and still has a full page.
TOP_K = 100

# TF Serving SavedModel (serving/recdistill/<version>/)
MODEL_NAME = "recdistill"
SERVING_DEFAULT = "serving_default"
SERVE_TF_EXAMPLES = "serve_tf_examples"
USER_ID = "user_id"          # string [batch]
HISTORY = "history"          # string [batch, H], most recent first, "" pads
EXAMPLES = "examples"        # serialized tf.Example [batch]: user_id, history and raw user features
ITEM_IDS = "item_ids"        # string [batch, K]
SCORES = "scores"            # float32 [batch, K]

# TFLite model (mobile/<version>/model.tflite)
TFLITE_SIGNATURE = "serving_default"
USER_INDEX = "user_index"    # int32 [1]; 0 = unknown user
HISTORY_INDICES = "history"  # int32 [1, H]; 0 pads
ITEM_INDICES = "item_indices"  # int32 [1, K]
TFLITE_FILE = "model.tflite"
USER_VOCAB = "user_vocab.txt"  # line i: the id of index i (line 0: "", out-of-vocabulary)
ITEM_VOCAB = "item_vocab.txt"
METADATA = "metadata.json"



def serve_example(user_id, history) -> bytes:
    """A serialized tf.Example as serve_tf_examples takes it: bytes `user_id` and bytes list
    `history`, most recent first (str values UTF-8 encoded, bytes kept as they are; no raw user
    features). The one builder of the clients, the soak bench and the export's own check."""
    from tensorflow.core.example import example_pb2, feature_pb2  # loads TensorFlow: only when called

    def strings(values):
        encoded = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values]
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=encoded))

    return example_pb2.Example(features=feature_pb2.Features(feature={
        USER_ID: strings([user_id]), HISTORY: strings(history)})).SerializeToString()


# Beside the TF Serving model directory (serving/)
MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
