"""The files TF Serving reads beside the model directory (serving/ in a run's output).

  models.config            ModelServerConfig: one model, `recdistill`, latest version only.
  batching_parameters.txt  BatchingParameters for --enable_batching (sized for one GPU).

Both are text-format protos built from the proto classes, so a misspelt field fails here and not
in the server. tensorflow-serving-api ships the apis/ and config/ protos but not
servables/tensorflow/session_bundle_config.proto, where BatchingParameters lives: when that
module is missing, `batching_parameters_class` builds the message from the fields written here,
with upstream's names and numbers (text format only depends on the names).
"""

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before the protos import TensorFlow)

from google.protobuf import text_format  # noqa: E402

from models.foundation import signatures, storage  # noqa: E402

# Batching for the stock GPU image, one GPU per server. A request costs one [B, d] x [d, V] matmul
# and a top-K; alone it leaves the GPU almost idle, so requests are batched:
#   max_batch_size 256: 256 queries x the whole catalog is still a small matmul and a small score
#     buffer ([256, V] floats: 1.7 MB for MovieLens' 1.7K items), and more queries per kernel launch.
#   batch_timeout_micros 1000: a request waits at most 1 ms for others; under load batches fill
#     before that, at low load the wait stays far below the network's latency (TF Serving's
#     batching guide: "slightly above zero, e.g. 1 millisecond").
#   num_batch_threads 4: batches in flight at once. The id lookups, parsing and gathers run on the
#     CPU around the GPU matmul, so a few threads overlap one batch's CPU work with another's GPU work.
#   max_enqueued_batches 16: a bounded queue (16 x 256 requests) turns a traffic spike into fast
#     UNAVAILABLE errors the client or load balancer can retry elsewhere, instead of seconds of queueing.
#   allowed_batch_sizes: batches are padded up to one of these, so the GPU sees four shapes only
#     (kernel selection and memory plans are per shape); the last must equal max_batch_size.
BATCHING = {"max_batch_size": 256, "batch_timeout_micros": 1000, "num_batch_threads": 4,
            "max_enqueued_batches": 16}
ALLOWED_BATCH_SIZES = (16, 64, 128, 256)


def write_models_config(serving_dir: str, model_base_path: str = "/models/recdistill") -> str:
    """Writes serving_dir/models.config; model_base_path is the model's directory as the server sees it."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = signatures.MODEL_NAME, model_base_path, "tensorflow"
    # Only the newest version is served: a pushed version replaces the previous one once it has loaded.
    model.model_version_policy.latest.num_versions = 1
    return _write(serving_dir, signatures.MODELS_CONFIG, text_format.MessageToString(config))


def write_batching_parameters(serving_dir: str) -> str:
    """Writes serving_dir/batching_parameters.txt (values: BATCHING above, and why)."""
    parameters = batching_parameters_class()()
    for name, value in BATCHING.items():
        getattr(parameters, name).value = value
    parameters.allowed_batch_sizes.extend(ALLOWED_BATCH_SIZES)
    return _write(serving_dir, signatures.BATCHING_PARAMETERS, text_format.MessageToString(parameters))


def batching_parameters_class():
    """tensorflow.serving.BatchingParameters: TF Serving's own class, or one built from its fields."""
    try:
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2
    except ImportError:
        return _built_batching_parameters()
    return session_bundle_config_pb2.BatchingParameters


def _built_batching_parameters():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    proto = descriptor_pb2.FileDescriptorProto(
        name="recdistill/batching_parameters.proto", package="tensorflow.serving", syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name])
    message = proto.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    for name, number in (("max_batch_size", 1), ("batch_timeout_micros", 2), ("max_enqueued_batches", 3),
                         ("num_batch_threads", 4)):
        message.field.add(name=name, number=number, label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                          type_name=".google.protobuf.Int64Value")
    message.field.add(name="thread_pool_name", number=5, label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                      type_name=".google.protobuf.StringValue")
    message.field.add(name="allowed_batch_sizes", number=6, label=field.LABEL_REPEATED, type=field.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=field.LABEL_OPTIONAL, type=field.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def _write(serving_dir: str, name: str, text: str) -> str:
    path = storage.join(serving_dir, name)
    storage.write_atomic(path, text.encode("utf-8"))  # a polling server reads the old file or the new one
    return path
