"""Serialized tf.Examples of a request, checked in Python before the request joins a batch.

A signature such as serve_tf_examples parses its `examples` input inside the graph, so one
malformed example fails every request batched with it, and TensorFlow's error message quotes the
example's bytes (when they are not UTF-8, TensorFlow's own conversion of that message raises
UnicodeDecodeError). The features each signature's graph parses are read once, at load, from its
ParseExampleV2 ops; each request's examples are then checked against them:

  specs = parsed_features(loaded.signatures["serve_tf_examples"])
  # {"examples": {"user_id": FeatureSpec(tf.string, 1), "history": FeatureSpec(tf.string, None), ...}}
  check_examples("examples", [b"...", ...], specs["examples"])   # the number of values, or InvalidRequest

An example must parse as a tf.Example; every feature the graph reads must have the kind the graph
parses (bytes_list, int64_list or float_list), a fixed-size (dense) feature exactly its number of
values, and every bytes value must be UTF-8 text (ids and text columns are). Features the graph
does not read are not looked at, as parse_example ignores them. Caveat: only ParseExampleV2 ops
that read a signature input directly are found (recdistill's exporter writes them so); anything
else the graph refuses is still confined to its sender by the batcher, which reruns a failed
batch's requests one by one.
"""

import dataclasses
from typing import Dict, Iterable, List, Mapping, Optional

from google.protobuf.message import DecodeError
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2
from tensorflow.python.framework import tensor_util

from serving.request_limits import InvalidRequest

_KINDS = {types_pb2.DT_STRING: "bytes_list", types_pb2.DT_INT64: "int64_list", types_pb2.DT_FLOAT: "float_list"}


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """kind: the Feature field the graph parses; values: a dense feature's value count (None: any)."""
    kind: str
    values: Optional[int]


def parsed_features(function) -> Dict[str, Dict[str, FeatureSpec]]:
    """{signature input name: {feature name: FeatureSpec}} for the inputs the function's graph
    parses as serialized tf.Examples (ParseExampleV2); {} when it parses none."""
    inputs = set(function.structured_input_signature[1])
    found: Dict[str, Dict[str, FeatureSpec]] = {}
    for definition in function.graph.as_graph_def().library.function:
        arguments = {arg.name for arg in definition.signature.input_arg}
        nodes = {node.name: node for node in definition.node_def}
        for node in definition.node_def:
            if node.op != "ParseExampleV2" or node.input[0] not in arguments or node.input[0] not in inputs:
                continue
            keys = [_constant_strings(nodes, name) for name in node.input[2:5]]  # sparse, dense, ragged keys
            if any(k is None for k in keys):
                continue  # keys computed in the graph: nothing to check against
            sparse, dense, ragged = keys
            attr = node.attr
            shapes = [[d.size for d in shape.dim] for shape in attr["dense_shapes"].list.shape]
            features = found.setdefault(node.input[0], {})
            for names, types, counts in ((sparse, attr["sparse_types"].list.type, [None] * len(sparse)),
                                         (dense, attr["Tdense"].list.type, [_count(s) for s in shapes]),
                                         (ragged, attr["ragged_value_types"].list.type, [None] * len(ragged))):
                for name, dtype, count in zip(names, types, counts):
                    _merge(features, name, FeatureSpec(_KINDS.get(dtype, ""), count))
    return found


def check_examples(input_name: str, serialized: Iterable[bytes], features: Mapping[str, FeatureSpec]) -> int:
    """InvalidRequest naming the first bad example (row) and feature; else the values they hold."""
    total = 0
    for row, data in enumerate(serialized):
        try:
            example = example_pb2.Example.FromString(data)
        except (DecodeError, TypeError, ValueError):
            raise InvalidRequest(f"input {input_name!r} row {row}: not a serialized tf.Example") from None
        for name, feature in example.features.feature.items():
            spec = features.get(name)
            kind = feature.WhichOneof("kind")
            if spec is None or kind is None:
                continue
            if spec.kind and kind != spec.kind:
                raise InvalidRequest(f"input {input_name!r} row {row}: feature {name!r} is a {kind}; "
                                     f"the model reads it as a {spec.kind}")
            values = getattr(feature, kind).value
            if spec.values is not None and len(values) != spec.values:
                raise InvalidRequest(f"input {input_name!r} row {row}: feature {name!r} has {len(values)} values; "
                                     f"the model reads exactly {spec.values}")
            if kind == "bytes_list":
                for value in values:
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError:
                        raise InvalidRequest(f"input {input_name!r} row {row}: feature {name!r} holds bytes that "
                                             f"are not UTF-8 text ({value[:20]!r})") from None
            total += len(values)
    return total


def _constant_strings(nodes, reference: str) -> Optional[List[str]]:
    """The strings of the Const node a function input reference ("node:output:0") names, or None."""
    node = nodes.get(reference.split(":")[0])
    if node is None or node.op != "Const":
        return None
    return [value.decode("utf-8") for value in tensor_util.MakeNdarray(node.attr["value"].tensor).reshape(-1)]


def _count(shape: List[int]) -> Optional[int]:
    """Values of a dense feature of `shape` ([] is one value); None for a shape with a free dimension."""
    count = 1
    for size in shape:
        if size < 0:
            return None
        count *= size
    return count


def _merge(features: Dict[str, FeatureSpec], name: str, spec: FeatureSpec) -> None:
    """A feature parsed twice (a dense and a ragged read of one column): the stricter count; a kind
    the two reads disagree on is left unchecked (the graph itself decides)."""
    seen = features.get(name)
    if seen is None:
        features[name] = spec
    elif seen.kind != spec.kind:
        features[name] = FeatureSpec("", None)
    elif seen.values is None:
        features[name] = spec
