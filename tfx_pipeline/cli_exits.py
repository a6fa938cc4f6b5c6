"""The command line's exit codes and its one-line error (shared by tfx_pipeline/cli.py and its
subcommand modules)."""

import sys

EXIT_FAILURE, EXIT_BAD_INPUT = 1, 2


def fail(message: str, code: int) -> int:
    """Prints "recdistill: error: MESSAGE" to stderr; returns the exit code."""
    print(f"recdistill: error: {message}", file=sys.stderr)
    return code
