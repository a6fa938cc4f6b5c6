"""The versions of one model under a TF Serving base path, for the development server
(serving/dev_server.py), with TF Serving's latest-version policy:

  <model_base_path>/<version>/saved_model.pb   an integer directory name, one per pushed model

Only the highest version is served. A poll (`ModelVersions.poll`, or every `interval_s` seconds
after `start_polling`) loads a newer version in the caller's thread, replays its warmup records
(assets.extra/tf_serving_warmup_requests), then swaps it in atomically: a request that already
holds the old `LoadedVersion` finishes on it. Directories without saved_model.pb yet, or whose
name is not an integer (the exporter's `<version>.incomplete`), are skipped. A version that fails
to load is retried with backoff, and again whenever its directory changed (serving/load_retries.py);
meanwhile the previous version keeps serving. Loads, unloads and failed loads are logged.

Requests are checked before anything is allocated for them: each input's declared shape against
the signature and the size limits (serving/request_limits.py), and serialized tf.Examples
against the features the signature parses (serving/example_checks.py).

Caveat: when every version directory disappears, the last loaded version keeps serving (TF
Serving would unload it); a deleted current version is replaced by the highest one left.
"""

import logging
import os
import re
import threading
import time
import weakref
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow.core.framework import tensor_pb2  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2  # noqa: E402

from models.foundation import signatures  # noqa: E402
from serving import example_checks, memory, request_limits  # noqa: E402
from serving.load_retries import (  # noqa: E402
    DEFAULT_INTERVAL_S, DEFAULT_MAX_RETRIES, LoadRetries, directory_fingerprint)
from serving.request_limits import InvalidRequest, RequestLimits  # noqa: E402,F401 (InvalidRequest: re-exported)

_log = logging.getLogger(__name__)
State = get_model_status_pb2.ModelVersionStatus.State
_VERSION_NAME = re.compile(r"[0-9]{1,18}")  # an int64, as TF Serving parses version directories


class NotFound(LookupError):
    """An unknown model, version or signature (gRPC NOT_FOUND)."""


class ServedSignature:
    """One signature of a loaded version: checks request tensors and runs them.

    input_specs: {name: tf.TensorSpec}, e.g. user_id string [None], history string [None, H].
    """

    def __init__(self, version: int, name: str, function, limits: RequestLimits = RequestLimits()):
        self.version, self.name, self._function, self.limits = version, name, function, limits
        self.input_specs: Dict[str, tf.TensorSpec] = dict(function.structured_input_signature[1])
        self.output_names: List[str] = sorted(function.structured_outputs)
        # Requests can share a batch when every input and output has a free first dimension.
        specs = list(self.input_specs.values()) + list(function.structured_outputs.values())
        self.batchable = all(spec.shape.rank and spec.shape[0] is None for spec in specs)
        self.example_features = example_checks.parsed_features(function)  # {input: {feature: FeatureSpec}}

    def to_arrays(self, inputs: Mapping[str, tensor_pb2.TensorProto]) -> Dict[str, np.ndarray]:
        """TensorProtos -> numpy arrays ([batch, ...] each), or InvalidRequest saying what is wrong,
        or ResourceExhausted for inputs over the limits: shapes are checked before any array exists."""
        missing, extra = sorted(set(self.input_specs) - set(inputs)), sorted(set(inputs) - set(self.input_specs))
        if missing or extra:
            problems = ([f"missing input(s) {', '.join(missing)}"] if missing else []) + (
                [f"unknown input(s) {', '.join(extra)}"] if extra else [])
            raise InvalidRequest(f"{'; '.join(problems)}: signature {self.name!r} takes {self.describe()}")
        for name, spec in self.input_specs.items():  # every input's declared size before any is built
            proto = inputs[name]
            if proto.dtype != spec.dtype.as_datatype_enum:
                raise InvalidRequest(f"input {name!r} is {_dtype_name(proto.dtype)}; signature {self.name!r} "
                                     f"takes {spec.dtype.name} {_shape(spec.shape)}")
            dims = request_limits.declared_dims(name, proto)
            if len(dims) != spec.shape.rank or not spec.shape.is_compatible_with(dims):
                raise InvalidRequest(f"input {name!r} has shape {dims}; signature {self.name!r} "
                                     f"takes {spec.dtype.name} {_shape(spec.shape)}")
            self.limits.check(name, dims, batched=spec.shape[0] is None)
            # As TensorFlow reads a TensorProto, fewer values than the shape holds repeat the last one
            # (all zeros can be sent as one: bounded by the element limit); more values are refused
            # here (TF Serving drops them), as is packed content that is not exactly the shape.
            values, elements = request_limits.value_count(proto), request_limits.product(dims)
            if values > elements or values < 0 or (proto.tensor_content and values != elements):
                carried = (f"{len(proto.tensor_content)} bytes of packed content" if proto.tensor_content
                           else f"{values} values")
                raise InvalidRequest(f"input {name!r} is not a well-formed tensor of shape {dims}: {carried}")
        arrays = {}
        for name in self.input_specs:
            try:
                arrays[name] = tf.make_ndarray(inputs[name])
            except (ValueError, TypeError) as error:
                raise InvalidRequest(f"input {name!r} is not a well-formed tensor: {error}") from None
        batched = [name for name, spec in self.input_specs.items() if spec.shape.rank and spec.shape[0] is None]
        batch = {name: arrays[name].shape[0] for name in batched}
        if len(set(batch.values())) > 1:
            raise InvalidRequest("inputs have different batch sizes (first dimension): "
                                 + ", ".join(f"{name} {size}" for name, size in sorted(batch.items())))
        for name, features in self.example_features.items():
            values = example_checks.check_examples(name, arrays[name].reshape(-1), features)
            self.limits.check_example_values(name, values)
        return arrays

    def outputs_for(self, output_filter) -> List[str]:
        """The outputs a request asks for (all when output_filter is empty), as TF Serving checks them."""
        wanted = list(output_filter) or self.output_names
        unknown = sorted(set(wanted) - set(self.output_names))
        if unknown or len(set(wanted)) != len(wanted):
            raise InvalidRequest(f"output_filter {wanted}: signature {self.name!r} has outputs "
                                 f"{', '.join(self.output_names)}, each at most once")
        return wanted

    def run(self, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        try:
            outputs = self._function(**{name: tf.constant(inputs[name], spec.dtype)
                                        for name, spec in self.input_specs.items()})
        except UnicodeDecodeError:
            # TensorFlow's error message quoted input bytes that are not UTF-8 (e.g. an unparsable
            # serialized tf.Example), and turning that message into Python text failed.
            raise InvalidRequest(f"signature {self.name!r} refused the inputs (the model's error message "
                                 "quoted bytes that are not UTF-8: a malformed input value)") from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def describe(self) -> str:
        return ", ".join(f"{name} ({spec.dtype.name} {_shape(spec.shape)})"
                         for name, spec in sorted(self.input_specs.items()))


class LoadedVersion:
    """A loaded SavedModel version: its signatures and the SignatureDefMap TF Serving reports."""

    def __init__(self, version: int, path: str, limits: RequestLimits = RequestLimits()):
        self.version, self.path = version, path
        self._loaded = tf.saved_model.load(path)
        self.signatures = {name: ServedSignature(version, name, function, limits)
                           for name, function in self._loaded.signatures.items()}
        self.signature_def_map = _signature_def_map(path)
        self.warmup_requests = 0  # replayed by warm_up()

    def signature(self, name: str) -> ServedSignature:
        # TF Serving answers FAILED_PRECONDITION ("Serving signature key ... not found") for an
        # unknown signature in Predict; this server says NOT_FOUND, as recdistill's contract asks.
        if name not in self.signatures:
            raise NotFound(f"serving signature {name!r} not found in version {self.version}; "
                           f"it has {', '.join(sorted(self.signatures))}")
        return self.signatures[name]

    def warm_up(self) -> int:
        """Replays assets.extra/tf_serving_warmup_requests (Predict records); returns how many ran."""
        from tensorflow_serving.apis import prediction_log_pb2

        path = os.path.join(self.path, signatures.WARMUP_FILE)
        if not tf.io.gfile.exists(path):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog.FromString(record)
            if log.WhichOneof("log_type") != "predict_log":
                continue  # classify/regress/multi-inference records: this server has no such APIs
            request = log.predict_log.request
            signature = self.signature(request.model_spec.signature_name or signatures.SERVING_DEFAULT)
            signature.run(signature.to_arrays(request.inputs))
            count += 1
        self.warmup_requests = count
        return count


class ModelVersions:
    """The served version of `model_name` under `base_path`, and every version's state."""

    def __init__(self, base_path: str, model_name: str = signatures.MODEL_NAME,
                 max_load_retries: int = DEFAULT_MAX_RETRIES, load_retry_interval_s: float = DEFAULT_INTERVAL_S,
                 limits: RequestLimits = RequestLimits()):
        self.base_path, self.model_name, self.limits = base_path, model_name, limits
        self.retries = LoadRetries(lambda version: directory_fingerprint(self._path(version)),
                                   max_load_retries, load_retry_interval_s)
        self._current: Optional[LoadedVersion] = None
        self._retired: List[weakref.ref] = []  # unloaded versions, until requests in flight let go
        self._states: Dict[int, Tuple[int, str]] = {}  # version -> (State, error message)
        self._lock = threading.Lock()        # _current and _states
        self._poll_lock = threading.Lock()   # one poll at a time
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def current(self) -> Optional[LoadedVersion]:
        return self._current

    def get(self, model_name: str, version: Optional[int] = None) -> LoadedVersion:
        """The version a request names (None: the latest), or NotFound in TF Serving's words."""
        current = self._current  # one read: a swap after it does not change this request's version
        wanted = f"Latest({model_name})" if version is None else f"Specific({model_name}, {version})"
        if model_name != self.model_name or current is None or version not in (None, current.version):
            raise NotFound(f"Servable not found for request: {wanted}"
                           + (f"; this server serves version {current.version} of {self.model_name!r}"
                              if current is not None else f"; no version of {self.model_name!r} is loaded yet"))
        return current

    def states(self) -> Dict[int, Tuple[int, str]]:
        """{version: (ModelVersionStatus.State, error message)} of every version seen."""
        with self._lock:
            return dict(self._states)

    def on_disk(self) -> List[int]:
        """Complete version directories (integer names with a saved_model.pb), ascending."""
        versions = []
        for entry in tf.io.gfile.listdir(self.base_path):
            name = entry.rstrip("/")
            path = os.path.join(self.base_path, name)
            if _VERSION_NAME.fullmatch(name) and any(
                    tf.io.gfile.exists(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
                versions.append(int(name))
        return sorted(versions)

    def poll(self, raise_errors: bool = False) -> bool:
        """Loads, warms up and swaps in the latest version if it is not the served one; True if swapped."""
        with self._poll_lock:
            self._release_retired()
            try:
                versions = self.on_disk()
            except tf.errors.OpError as error:
                _log.warning("cannot list %s: %s", self.base_path, error)
                return False
            current = self._current
            if not versions or (current is not None and current.version == versions[-1]):
                return False
            latest = versions[-1]
            if not self.retries.should_try(latest):
                return False
            return self._load(latest, raise_errors)

    def _load(self, version: int, raise_errors: bool) -> bool:  # with self._poll_lock held
        try:
            before = self.retries.fingerprint(version)
        except tf.errors.OpError as error:
            _log.warning("%s version %d: cannot list its files: %s", self.model_name, version, error)
            return False
        self._set_state(version, State.LOADING)
        started = time.monotonic()
        try:
            loaded = LoadedVersion(version, self._path(version), self.limits)
            warmed = loaded.warm_up()
        except Exception as error:  # noqa: BLE001 (any failure leaves the old version serving)
            self._set_state(version, State.END, f"loading version {version} failed: {error}")
            wait = self.retries.failed(version, before)
            attempt, attempts = self.retries.attempts(version), self.retries.max_retries + 1
            _log.error("%s version %d did not load (attempt %d of %d): %s; %s", self.model_name, version, attempt,
                       attempts, _one_line(error), f"next attempt in {wait:.0f} s" if wait is not None else
                       "no more attempts unless its directory changes")
            if raise_errors:
                raise
            return False
        self.retries.forget(version)
        with self._lock:
            old, self._current = self._current, loaded
            self._states[version] = (State.AVAILABLE, "")
            if old is not None:
                self._states[old.version] = (State.END, "")
        _log.info("%s version %d is available: loaded from %s in %.1f s, %d warmup requests replayed",
                  self.model_name, version, loaded.path, time.monotonic() - started, warmed)
        if old is not None:
            _log.info("%s version %d is unloaded (replaced by version %d; requests in flight finish on it)",
                      self.model_name, old.version, version)
            self._retired.append(weakref.ref(old))
        return True

    def _release_retired(self) -> None:  # with self._poll_lock held
        """Once the unloaded versions' last requests are done, their memory goes back to the
        system (serving/memory.py: without it, each reload left ~45 MB of resident memory behind)."""
        alive = [ref for ref in self._retired if ref() is not None]
        if len(alive) < len(self._retired):
            self._retired, before = alive, memory.resident_mb()
            memory.release_freed_memory()
            _log.info("memory of unloaded versions released: %.0f MB resident before, %.0f MB after",
                      before, memory.resident_mb())

    def _path(self, version: int) -> str:
        return os.path.join(self.base_path, str(version))

    def start_polling(self, interval_s: float) -> None:
        def loop():
            while not self._stop.wait(interval_s):
                try:
                    self.poll()
                except Exception:  # noqa: BLE001 (the served version stays; the next poll tries again)
                    _log.exception("polling %s failed", self.base_path)

        self._thread = threading.Thread(target=loop, name="version-poll", daemon=True)
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _set_state(self, version: int, state: int, error: str = "") -> None:
        with self._lock:
            self._states[version] = (state, error)


def _signature_def_map(path: str) -> get_model_metadata_pb2.SignatureDefMap:
    """The serving meta graph's signature_def, as TF Serving's GetModelMetadata returns it.

    Read from saved_model.pb rather than rebuilt from `loaded.signatures`: the TensorInfo names
    are the graph's (serving_default_user_id:0, StatefulPartitionedCall_1:0), which the loaded
    functions do not know, and TF Serving also lists TF2's __saved_model_init_op."""
    binary = os.path.join(path, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    if tf.io.gfile.exists(binary):
        saved_model.ParseFromString(tf.io.gfile.GFile(binary, "rb").read())
    else:
        text_format.Parse(tf.io.gfile.GFile(os.path.join(path, "saved_model.pbtxt")).read(), saved_model)
    graphs = [g for g in saved_model.meta_graphs if tf.saved_model.SERVING in g.meta_info_def.tags]
    if not graphs:
        raise ValueError(f"{path}: no meta graph tagged {tf.saved_model.SERVING!r}")
    return get_model_metadata_pb2.SignatureDefMap(signature_def=graphs[0].signature_def)


def _one_line(error: Exception) -> str:
    """An error's message on one line (TensorFlow's span several), at most 300 characters."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def _shape(shape: tf.TensorShape) -> str:
    return "[" + ", ".join("batch" if d is None else str(d) for d in shape.as_list()) + "]"


def _dtype_name(enum: int) -> str:
    try:
        return tf.dtypes.as_dtype(enum).name
    except TypeError:
        return f"dtype {enum} (not a TensorFlow dtype)"
