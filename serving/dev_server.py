"""A development gRPC server speaking TF Serving's API, for machines without the TF Serving binary
(`recdistill serve`). Production is TF Serving itself: the GPU image on Kubernetes, configured by
the files next to the model directory (serving/README.md).

  server = serve("runs/movielens-100k/serving/recdistill", port=8500)   # started, returns at once
  run_until_signal("runs/movielens-100k/serving/recdistill", port=8500)  # blocks until SIGTERM/SIGINT

It implements PredictionService.Predict and GetModelMetadata and ModelService.GetModelStatus
(the other methods answer UNIMPLEMENTED) over the integer version directories of one model, and
behaves as TF Serving does where a client can tell:
  - latest-version policy: the highest complete version is served; a newer one pushed while the
    server runs is loaded in the background, warmed up with its warmup records and swapped in
    atomically (serving/model_versions.py); requests in flight finish on the old version;
  - model_spec.name must be the model's and model_spec.version, if set, the served version, else
    NOT_FOUND; signature_name defaults to serving_default, an unknown one is NOT_FOUND;
  - inputs that do not fit the signature (missing or unknown names, dtype, rank, shape, batch
    sizes that differ between inputs, malformed tensors) are INVALID_ARGUMENT with a message
    that says what the signature takes; the server keeps serving;
  - concurrent requests for the same version and signature are batched (serving/batching.py);
  - message sizes are bounded (max_message_bytes each way), and each input's declared shape is
    checked before any array is built: rows per request and elements per tensor over the limits
    are RESOURCE_EXHAUSTED (serving/request_limits.py); serialized tf.Examples are checked before
    they join a batch, and a failed batch is rerun request by request, so an error reaches only
    its sender;
  - it listens on 127.0.0.1 unless told another host, with TLS or mutual TLS when given
    certificates (serving/tls.py); loads, unloads, failed loads and each minute's error counts
    are logged (serving/server_log.py);
  - responses carry model_spec (name, version, signature_name), outputs as TensorProtos;
    GetModelMetadata returns the SavedModel's SignatureDefMap under "signature_def".
Not implemented: Classify, Regress, MultiInference, version labels, the REST API, several models.
"""

import ipaddress
import logging
import math
import signal
import threading
from concurrent import futures
from typing import Callable, Optional

import grpc

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
    prediction_service_pb2_grpc, status_pb2)

from models.foundation import signatures  # noqa: E402
from serving import flags, load_retries  # noqa: E402
from serving.batching import Batcher, BatcherStopped, BatchStats  # noqa: E402
from serving.model_versions import InvalidRequest, ModelVersions, NotFound  # noqa: E402
from serving.request_limits import RequestLimits, ResourceExhausted  # noqa: E402
from serving.server_log import ErrorCounts  # noqa: E402
from serving.tls import ServerTLS  # noqa: E402

_log = logging.getLogger(__name__)
SIGNATURE_DEF = "signature_def"  # the one metadata field TF Serving knows
_UNKNOWN = 2  # tensorflow.error.Code UNKNOWN, in a failed version's StatusProto


class DevServer(grpc.Server):
    """The started grpc.Server, plus what tests and the CLI read: the bound host and port, whether
    TLS is on, the model versions, the batcher's counters, the errors answered. stop(grace) stops
    accepting at once, lets requests in flight finish within `grace` seconds, then stops polling
    and batching."""

    def __init__(self, server: grpc.Server, host: str, port: int, tls: bool, versions: ModelVersions,
                 batcher: Batcher, errors: ErrorCounts):
        self._server, self.host, self.port, self.tls = server, host, port, tls
        self.versions, self.batcher, self.errors = versions, batcher, errors

    @property
    def address(self) -> str:
        return _address(self.host, self.port)

    def batch_stats(self) -> BatchStats:
        return self.batcher.stats()

    def poll_now(self) -> bool:
        """Looks for a newer version at once (it is also done every poll_seconds); True if swapped."""
        return self.versions.poll()

    def stop(self, grace: Optional[float]) -> threading.Event:
        done, stopped = threading.Event(), self._server.stop(grace)

        def finish():
            stopped.wait()
            self.versions.stop_polling()
            self.batcher.stop()
            self.errors.stop()
            done.set()

        threading.Thread(target=finish, name="dev-server-stop", daemon=True).start()
        return done

    # grpc.Server's other methods: the wrapped server's.
    def add_generic_rpc_handlers(self, handlers):
        return self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name, method_handlers):
        return self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address):
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address, server_credentials):
        return self._server.add_secure_port(address, server_credentials)

    def start(self):
        return self._server.start()

    def wait_for_termination(self, timeout=None):
        return self._server.wait_for_termination(timeout)


BATCH_TIMEOUT_MS = flags.DEFAULT_BATCH_TIMEOUT_MS  # the reason is given there
DEFAULT_HOST = "127.0.0.1"  # loopback: exposing the server is a decision (--host), best with TLS


def serve(model_base_path: str, port: int, model_name: str = signatures.MODEL_NAME, poll_seconds: float = 1.0,
          max_batch_size: int = 64, batch_timeout_ms: float = BATCH_TIMEOUT_MS,
          max_message_bytes: int = 64 * 1024 * 1024,
          *, host: str = DEFAULT_HOST, tls: Optional[ServerTLS] = None, limits: RequestLimits = RequestLimits(),
          max_load_retries: int = load_retries.DEFAULT_MAX_RETRIES,
          load_retry_interval_s: float = load_retries.DEFAULT_INTERVAL_S, error_log_interval_s: float = 60.0,
          max_workers: int = 32, num_batch_threads: int = 2) -> DevServer:
    """Loads the latest version under model_base_path and starts serving it on host:port.

    port 0 picks a free port (DevServer.port says which). host: 127.0.0.1 (this machine only) by
    default; 0.0.0.0 or an address exposes it, which is logged as a warning unless tls is set.
    Returns the started server; call stop(grace) or use run_until_signal. Raises
    FileNotFoundError if model_base_path is missing, ValueError for settings out of range,
    TLSFileError for unusable certificate files, the loading error if its latest version does not
    load, OSError if the address cannot be bound. With no version yet, the server starts and
    answers NOT_FOUND until the poll finds one.
    """
    _check_settings(poll_seconds=poll_seconds, batch_timeout_ms=batch_timeout_ms,
                    error_log_interval_s=error_log_interval_s, max_batch_size=max_batch_size,
                    max_message_bytes=max_message_bytes, port=port)
    credentials = tls.credentials() if tls is not None else None  # files read (and refused) first
    if not tf.io.gfile.isdir(model_base_path):
        raise FileNotFoundError(f"{model_base_path}: no such model directory (it holds <version>/saved_model.pb, "
                                f"e.g. <run>/serving/{signatures.MODEL_NAME})")
    versions = ModelVersions(model_base_path, model_name, max_load_retries, load_retry_interval_s, limits)
    if not versions.poll(raise_errors=True):
        _log.warning("no version of %s under %s yet: polling every %.1f s", model_name, model_base_path, poll_seconds)
    batcher = Batcher(max_batch_size, batch_timeout_ms / 1000.0, num_batch_threads)
    errors = ErrorCounts(error_log_interval_s)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers, thread_name_prefix="grpc"), options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0)])  # a port in use is an error, not a second server sharing it
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_Prediction(versions, batcher, errors), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelStatus(versions, errors), server)
    address = _address(host, port)
    try:
        bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError as error:  # grpc >= 1.5x raises; older versions returned 0
        bound, cause = 0, error
    else:
        cause = None
    if not bound:
        batcher.stop()
        errors.stop()
        raise OSError(f"cannot listen on {address} (is the port in use, or the address not this machine's?)") from cause
    server.start()
    versions.start_polling(poll_seconds)
    if tls is None and not is_loopback(host):
        _log.warning("listening on %s without TLS: anyone who can reach it can query the model and read its "
                     "answers; give --ssl-cert/--ssl-key (and --ssl-client-ca), or put TF Serving or a proxy "
                     "with TLS in front", _address(host, bound))
    return DevServer(server, host, bound, tls is not None, versions, batcher, errors)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1): reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to


def _address(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_settings(**settings) -> None:
    """ValueError naming the first setting that is NaN, infinite or out of range (a NaN batch
    timeout made every request wait forever; a NaN poll interval spun a core)."""
    for name, value in settings.items():
        low = {"port": 0, "batch_timeout_ms": 0, "max_batch_size": 1, "max_message_bytes": 1}.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                value < low if low is not None else value <= 0) or (name == "port" and value > 65535):
            bound = "in 0..65535" if name == "port" else f">= {low}" if low is not None else "> 0"
            raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def run_until_signal(model_base_path: str, port: int, grace_seconds: float = 10.0,
                     print_fn: Callable[[str], None] = print, **serve_kwargs) -> int:
    """serve(...) until SIGTERM or SIGINT, then shuts down gracefully; returns the signal number.

    On the signal the server stops accepting requests, lets those in flight finish within
    grace_seconds, and returns. Call it from the main thread (Python delivers signals there);
    the previous signal handlers are restored before it returns. serve_kwargs: serve()'s options.
    """
    server = serve(model_base_path, port, **serve_kwargs)
    received, stop = [], threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        received.append(signum)
        stop.set()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        # Only the number: a reference to the version here would keep it in memory once unloaded.
        current, tls = getattr(server.versions.current, "version", None), serve_kwargs.get("tls")
        security = ("TLS on, client certificates required" if tls.client_ca else "TLS on") if tls else "no TLS"
        reach = "this machine only" if is_loopback(server.host) else "exposed"
        print_fn(f"recdistill: serving {server.versions.model_name} "
                 f"{'(no version yet)' if current is None else f'version {current}'} from {model_base_path} "
                 f"on {server.address} ({reach}, {security}); SIGTERM or Ctrl-C stops")
        while not stop.wait(0.5):  # a timed wait, so that the handler runs promptly
            pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        server.stop(grace_seconds).wait()
    print_fn(f"recdistill: stopped on {signal.Signals(received[0]).name}" if received else "recdistill: stopped")
    return received[0] if received else 0


# --- the services ---

def _version_of(model_spec) -> Optional[int]:
    if model_spec.WhichOneof("version_choice") == "version_label":
        raise InvalidRequest(f"version_label {model_spec.version_label!r}: this server has no version labels; "
                             "set model_spec.version or leave it unset for the latest")
    return model_spec.version.value if model_spec.HasField("version") else None


def _answer(context, method, request, errors: ErrorCounts):
    """method(request), or the request aborted with the status code its error maps to (counted)."""
    try:
        return method(request, context)
    except NotFound as error:
        code, details = grpc.StatusCode.NOT_FOUND, str(error)
    except ResourceExhausted as error:
        code, details = grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)
    except (InvalidRequest, tf.errors.InvalidArgumentError) as error:
        code, details = grpc.StatusCode.INVALID_ARGUMENT, getattr(error, "message", None) or str(error)
    except futures.TimeoutError:
        code, details = grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded while the request was queued or run"
    except BatcherStopped:
        code, details = grpc.StatusCode.UNAVAILABLE, "the server is shutting down"
    except Exception as error:  # noqa: BLE001
        _log.exception("%s failed", method.__name__)
        code, details = grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}"
    errors.add(code)
    context.abort(code, details)


def _require_model_spec(request) -> None:
    if not request.HasField("model_spec"):
        raise InvalidRequest("Missing ModelSpec")


class _Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, versions: ModelVersions, batcher: Batcher, errors: ErrorCounts):
        self._versions, self._batcher, self._errors = versions, batcher, errors

    def Predict(self, request, context):  # noqa: N802 (gRPC's method name)
        return _answer(context, self._predict, request, self._errors)

    def GetModelMetadata(self, request, context):  # noqa: N802
        return _answer(context, self._metadata, request, self._errors)

    def _predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        _require_model_spec(request)
        model = self._versions.get(request.model_spec.name, _version_of(request.model_spec))
        signature = model.signature(request.model_spec.signature_name or signatures.SERVING_DEFAULT)
        arrays = signature.to_arrays(request.inputs)
        wanted = signature.outputs_for(request.output_filter)
        if signature.batchable:
            key = (signature, tuple((name, arrays[name].shape[1:]) for name in sorted(arrays)))
            # A call without a deadline has ~9e18 s remaining, beyond what a wait accepts.
            remaining = context.time_remaining()
            timeout = None if remaining is None or remaining > threading.TIMEOUT_MAX else remaining
            outputs = self._batcher.submit(key, signature.run, arrays).result(timeout=timeout)
        else:
            outputs = signature.run(arrays)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self._versions.model_name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = signature.name
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
        return response

    def _metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):
        _require_model_spec(request)
        if not request.metadata_field:
            raise InvalidRequest("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF:
                raise InvalidRequest(f"Metadata field {field} is not supported")
        model = self._versions.get(request.model_spec.name, _version_of(request.model_spec))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self._versions.model_name
        response.model_spec.version.value = model.version
        response.metadata[SIGNATURE_DEF].Pack(model.signature_def_map)
        return response


class _ModelStatus(model_service_pb2_grpc.ModelServiceServicer):
    """Every version seen, newest first: AVAILABLE (served), LOADING, END (replaced or failed)."""

    def __init__(self, versions: ModelVersions, errors: ErrorCounts):
        self._versions, self._errors = versions, errors

    def GetModelStatus(self, request, context):  # noqa: N802
        return _answer(context, self._status, request, self._errors)

    def _status(self, request: get_model_status_pb2.GetModelStatusRequest, context):
        _require_model_spec(request)
        name = request.model_spec.name
        states = self._versions.states() if name == self._versions.model_name else {}
        version = _version_of(request.model_spec)
        if version is not None:
            if version not in states:
                raise NotFound(f"Could not find version {version} of model {name}")
            states = {version: states[version]}
        elif not states:
            raise NotFound(f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in sorted(states, reverse=True):
            state, error = states[number]
            response.model_version_status.add(version=number, state=state, status=status_pb2.StatusProto(
                error_code=_UNKNOWN if error else 0, error_message=error))
        return response
