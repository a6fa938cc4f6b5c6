"""argparse types for the numeric flags of `recdistill serve` and `recdistill query`: each value is
checked (NaN, infinities, range) while the command line is read, so that a bad value stops the
command with exit code 2 and the flag's name before anything starts. A NaN batch timeout used to
make every request wait forever, a NaN poll interval spun a core.

  parser.add_argument("--poll-seconds", type=flags.positive_float, default=1.0)
"""

import argparse
import math

# The server's defaults, here so that reading the command line does not import TensorFlow; the
# reasons are given where they are used (serving/request_limits.py, serving/load_retries.py).
DEFAULT_MAX_REQUEST_ROWS = 1024
DEFAULT_MAX_TENSOR_ELEMENTS = 1 << 20
DEFAULT_MAX_LOAD_RETRIES = 5        # TF Serving's default
DEFAULT_LOAD_RETRY_INTERVAL_S = 2.0  # TF Serving waits 60 s; a development server wants the version sooner
# How long a request waits for others to batch with. Measured with tfx_pipeline/bench_serving.py on MovieLens-100K
# (2 cores, clients on the same machine): 2 ms gave p50 3.5 ms for one client, 0.3 ms gave 1.6 ms
# and the same throughput with 8 clients (1,100 requests/s), so the short wait is the default.
DEFAULT_BATCH_TIMEOUT_MS = 0.3


def _number(text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def port(text: str) -> int:
    value = _number(text, int)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number in 1..65535, got {text!r}")
    return value


def version(text: str) -> int:
    """A model version: an int64 >= 0, as TF Serving's version directories."""
    value = _number(text, int)
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"must be a version number in 0..2^63-1, got {text!r}")
    return value


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser's errors as one line naming the flag ("recdistill serve: error: argument
    --port: ..."), without argparse's usage text before it; still exit code 2."""
    def error(message: str):
        parser.exit(2, f"{parser.prog}: error: {message} (--help lists the options)\n")

    parser.error = error
    return parser
