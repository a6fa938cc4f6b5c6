"""Size limits on Predict requests, checked on what a TensorProto declares before any array exists.

A TensorProto carries its shape apart from its values, and TensorFlow reads "fewer values than
the shape" by repeating the last one: a 76-byte request declaring a [6,000,000] string tensor with
one value becomes 6,000,000 Python references (about 1 GB) inside tf.make_ndarray. So every
input's declared shape is read here first, in Python integers (no overflow), and refused when it
is malformed (INVALID_ARGUMENT) or larger than the limits (RESOURCE_EXHAUSTED):

  limits = RequestLimits(max_request_rows=1024, max_tensor_elements=1_048_576)
  dims = declared_dims("user_id", proto)          # [rows, ...] or InvalidRequest
  limits.check("user_id", dims, batched=True)     # or ResourceExhausted naming the limit's flag
  if value_count(proto) > product(dims): ...       # more values than the shape: malformed

The bytes a request carries are bounded apart from this, by the server's gRPC message limit.
"""

import dataclasses
import math
from typing import List

from tensorflow.core.framework import tensor_pb2, types_pb2

# Defaults (1,024 and 2^20): a request is a page of users, not a bulk job (100,000 rows took
# 12.7 s of one server's time and then overflowed the 64 MiB answer limit); 2^20 elements is
# 1,024 rows of 1,024 history items, far above serving_default's [rows, H].
from serving.flags import DEFAULT_MAX_REQUEST_ROWS, DEFAULT_MAX_TENSOR_ELEMENTS  # noqa: E402
ROWS_FLAG, ELEMENTS_FLAG = "--max-request-rows", "--max-tensor-elements"


class InvalidRequest(ValueError):
    """Inputs that do not fit the signature or are malformed (gRPC INVALID_ARGUMENT)."""


class ResourceExhausted(ValueError):
    """A request larger than the server's limits (gRPC RESOURCE_EXHAUSTED)."""


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """max_request_rows: first-dimension size of a batched input; max_tensor_elements: the
    product of any input tensor's dimensions (and the values of a request's tf.Examples)."""
    max_request_rows: int = DEFAULT_MAX_REQUEST_ROWS
    max_tensor_elements: int = DEFAULT_MAX_TENSOR_ELEMENTS

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def check(self, name: str, dims: List[int], batched: bool) -> None:
        """ResourceExhausted if input `name` declared with `dims` is over a limit."""
        if batched and dims and dims[0] > self.max_request_rows:
            raise ResourceExhausted(f"input {name!r} has {dims[0]:,} rows; this server takes at most "
                                    f"{self.max_request_rows:,} per request ({ROWS_FLAG}): split the request")
        elements = product(dims)
        if elements > self.max_tensor_elements:
            raise ResourceExhausted(f"input {name!r} declares shape {dims} ({elements:,} elements); this server "
                                    f"takes at most {self.max_tensor_elements:,} per tensor ({ELEMENTS_FLAG})")

    def check_example_values(self, name: str, values: int) -> None:
        """ResourceExhausted if a request's tf.Examples hold more feature values than a tensor may."""
        if values > self.max_tensor_elements:
            raise ResourceExhausted(f"input {name!r}: the request's tf.Examples hold {values:,} feature values; "
                                    f"this server takes at most {self.max_tensor_elements:,} ({ELEMENTS_FLAG})")


def product(dims: List[int]) -> int:
    """The number of elements of a shape, in Python integers (a [2^40, 2^40] shape does not wrap)."""
    return math.prod(dims)


def declared_dims(name: str, proto: tensor_pb2.TensorProto) -> List[int]:
    """The shape a TensorProto declares, or InvalidRequest when it has none a tensor can have."""
    dims = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_shape.unknown_rank or any(d < 0 for d in dims):
        raise InvalidRequest(f"input {name!r} has no valid shape (unknown rank or a negative dimension): "
                             "a request tensor has a concrete shape")
    return dims


# The repeated field that holds each dtype's values when tensor_content is empty (TensorProto).
_VALUE_FIELDS = {
    types_pb2.DT_STRING: "string_val", types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT64: "int64_val", types_pb2.DT_BOOL: "bool_val", types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val", types_pb2.DT_UINT32: "uint32_val", types_pb2.DT_UINT64: "uint64_val",
    **{dtype: "int_val" for dtype in (types_pb2.DT_INT32, types_pb2.DT_INT16, types_pb2.DT_INT8,
                                      types_pb2.DT_UINT8, types_pb2.DT_UINT16)},
}
_ITEM_BYTES = {types_pb2.DT_FLOAT: 4, types_pb2.DT_DOUBLE: 8, types_pb2.DT_INT64: 8, types_pb2.DT_INT32: 4,
               types_pb2.DT_INT16: 2, types_pb2.DT_INT8: 1, types_pb2.DT_UINT8: 1, types_pb2.DT_UINT16: 2,
               types_pb2.DT_UINT32: 4, types_pb2.DT_UINT64: 8, types_pb2.DT_BOOL: 1, types_pb2.DT_HALF: 2,
               types_pb2.DT_BFLOAT16: 2}


def value_count(proto: tensor_pb2.TensorProto) -> int:
    """How many values the proto carries (tensor_content's bytes / item size, else the typed field),
    or -1 when tensor_content is not a whole number of items of its dtype (malformed)."""
    if proto.tensor_content:
        size = _ITEM_BYTES.get(proto.dtype)
        if size is None or len(proto.tensor_content) % size:
            return -1
        return len(proto.tensor_content) // size
    field = _VALUE_FIELDS.get(proto.dtype)
    return len(getattr(proto, field)) if field else 0
