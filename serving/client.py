"""A typed gRPC client for the recdistill model, on TF Serving's official stubs.

It sends only standard PredictRequest / GetModelMetadataRequest / GetModelStatusRequest fields,
so it works unchanged against the stock TF Serving image and the development server
(serving/dev_server.py). Names and shapes: models/foundation/signatures.py.

  with RecommendationClient("localhost:8500") as client:
      [top] = client.recommend(["196"], [["242", "302"]], k=10)   # [(item_id, score), ...] best first
  RecommendationClient("host:8500", tls=ClientTLS(ca="ca.pem"))   # TLS (serving/tls.py)

Every call has a deadline (timeout_s, per attempt). UNAVAILABLE (no server yet, a restart, a
full queue) is retried `retries` times with exponential backoff (backoff_s, 2 * backoff_s, ...);
every other error (INVALID_ARGUMENT, NOT_FOUND, DEADLINE_EXCEEDED, ...) surfaces at once as a
ServingError with its grpc.StatusCode: a malformed request does not get better by repeating it.

History length: serving_default takes exactly H items per user. `recommend` pads ("" at the end)
or truncates (keeping the most recent, which come first) each history to H, which it learns once
per client from GetModelMetadata (the `history` input's second dimension). Caveat: a new model
version with another H needs a new client.
"""

import math
import time
from typing import Dict, List, Optional, Sequence, Tuple

import grpc

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import meta_graph_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2, get_model_status_pb2, model_pb2, model_service_pb2_grpc, predict_pb2,
    prediction_service_pb2_grpc)

from models.foundation import signatures  # noqa: E402
from serving.tls import ClientTLS  # noqa: E402

Recommendation = Tuple[str, float]  # (item id, score)


class ServingError(Exception):
    """A failed call: `code` is the grpc.StatusCode, `details` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code, self.details = code, details


class RecommendationClient:
    """Recommendations, raw predictions, metadata and status of one served model.

    target: "HOST:PORT" (a channel with max_message_bytes each way is opened and owned: close()
    or `with` closes it; TLS when `tls` is given, else plaintext), or channel: any grpc.Channel
    (interceptors, a test's), left open. retries: attempts after the first, on UNAVAILABLE only.
    TLSFileError (a ValueError) if a certificate or key file of `tls` cannot be used.
    """

    def __init__(self, target: Optional[str] = None, channel: Optional[grpc.Channel] = None,
                 model_name: str = signatures.MODEL_NAME, timeout_s: float = 2.0, retries: int = 3,
                 backoff_s: float = 0.1, max_message_bytes: int = 64 * 1024 * 1024,
                 tls: Optional[ClientTLS] = None):
        if (target is None) == (channel is None):
            raise ValueError("give either target ('HOST:PORT') or channel, not both")
        if not (math.isfinite(timeout_s) and timeout_s > 0 and math.isfinite(backoff_s) and backoff_s >= 0) \
                or retries < 0:
            raise ValueError("timeout_s must be positive, retries and backoff_s not negative")
        self._own_channel = channel is None
        if channel is None:
            options = [("grpc.max_receive_message_length", max_message_bytes),
                       ("grpc.max_send_message_length", max_message_bytes),
                       # gRPC waits about 1 s before reconnecting and fails calls fast meanwhile: retries
                       # with a short backoff would all land in that wait without these.
                       ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                       ("grpc.max_reconnect_backoff_ms", 1000)]
            channel = (grpc.secure_channel(target, tls.credentials(), options=options + tls.options())
                       if tls is not None else grpc.insecure_channel(target, options=options))
        self.channel = channel
        self.model_name, self.timeout_s, self.retries, self.backoff_s = model_name, timeout_s, retries, backoff_s
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self._history_length: Optional[int] = None

    # --- recommendations ---

    def recommend(self, user_ids: Sequence[str], histories: Sequence[Sequence[str]], k: Optional[int] = None,
                  version: Optional[int] = None, signature: str = signatures.SERVING_DEFAULT,
                  version_label: Optional[str] = None) -> List[List[Recommendation]]:
        """Top items for each user, best first: [[(item_id, score), ...] per user].

        user_ids: [B] ids; histories: [B] lists of item ids, most recent first (any length).
        k: at most k items per user (None: all the model returns, K). version: None for the
        latest; or version_label (TF Serving's labels such as "stable"; not both). signature:
        serving_default, or serve_tf_examples (the user id and history are sent as tf.Examples,
        without raw user features).
        """
        if len(user_ids) != len(histories):
            raise ValueError(f"{len(user_ids)} user ids but {len(histories)} histories: give one history per user")
        if k is not None and k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not user_ids:
            return []
        request = predict_pb2.PredictRequest(model_spec=self._model_spec(version, signature, version_label))
        if signature == signatures.SERVE_TF_EXAMPLES:
            examples = [signatures.serve_example(user, items) for user, items in zip(user_ids, histories)]
            request.inputs[signatures.EXAMPLES].CopyFrom(tf.make_tensor_proto(examples, tf.string))
        else:
            h = self.history_length(version, version_label)
            rows = [[str(item) for item in items][:h] + [""] * max(h - len(items), 0) for items in histories]
            request.inputs[signatures.USER_ID].CopyFrom(
                tf.make_tensor_proto([str(user) for user in user_ids], tf.string, shape=[len(user_ids)]))
            request.inputs[signatures.HISTORY].CopyFrom(tf.make_tensor_proto(rows, tf.string, shape=[len(rows), h]))
        response = self.predict(request)
        ids = tf.make_ndarray(response.outputs[signatures.ITEM_IDS])
        scores = tf.make_ndarray(response.outputs[signatures.SCORES])
        return [[(item.decode("utf-8"), float(score)) for item, score in zip(row_ids[:k], row_scores[:k])]
                for row_ids, row_scores in zip(ids, scores)]

    def history_length(self, version: Optional[int] = None, version_label: Optional[str] = None) -> int:
        """H: how many history items serving_default takes (asked once, then remembered)."""
        if self._history_length is None:
            signature = self.signature_defs(version, version_label).get(signatures.SERVING_DEFAULT)
            history = signature.inputs.get(signatures.HISTORY) if signature is not None else None
            if history is None or len(history.tensor_shape.dim) != 2 or history.tensor_shape.dim[1].size < 1:
                raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                                   f"model {self.model_name!r} has no {signatures.SERVING_DEFAULT} signature taking "
                                   f"{signatures.HISTORY} [batch, H]: is it a recdistill model?")
            self._history_length = int(history.tensor_shape.dim[1].size)
        return self._history_length

    # --- the raw calls ---

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        return self._call(self._prediction.Predict, request)

    def metadata(self, version: Optional[int] = None,
                 version_label: Optional[str] = None) -> get_model_metadata_pb2.GetModelMetadataResponse:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=self._model_spec(version, None, version_label), metadata_field=["signature_def"])
        return self._call(self._prediction.GetModelMetadata, request)

    def signature_defs(self, version: Optional[int] = None,
                       version_label: Optional[str] = None) -> Dict[str, meta_graph_pb2.SignatureDef]:
        """{signature name: SignatureDef} from metadata(): inputs and outputs with dtype and shape."""
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        self.metadata(version, version_label).metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def)

    def status(self, version: Optional[int] = None) -> get_model_status_pb2.GetModelStatusResponse:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self._model_spec(version))
        return self._call(self._models.GetModelStatus, request)

    def close(self) -> None:
        if self._own_channel:
            self.channel.close()

    def __enter__(self) -> "RecommendationClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals ---

    def _model_spec(self, version: Optional[int], signature: Optional[str] = None,
                    version_label: Optional[str] = None) -> model_pb2.ModelSpec:
        if version is not None and version_label is not None:
            raise ValueError("give a version or a version_label, not both")
        spec = model_pb2.ModelSpec(name=self.model_name)
        if signature is not None:
            spec.signature_name = signature
        if version is not None:
            spec.version.value = int(version)
        if version_label is not None:
            spec.version_label = version_label
        return spec

    def _call(self, method, request):
        """method(request) with a deadline; UNAVAILABLE retried with backoff; ServingError otherwise."""
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as error:
                code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
                details = error.details() if callable(getattr(error, "details", None)) else str(error)
                if code != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise ServingError(code, details or code.name) from None
            time.sleep(self.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")  # pragma: no cover
