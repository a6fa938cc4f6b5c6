"""How each `recdistill` subcommand's --help reads: every option with its default, and examples.

Imports nothing heavy: `recdistill --help`, `--version` and a bad flag are answered in a fraction
of a second (tests/tfx_pipeline/test_cli_help.py walks every subcommand).
"""

import argparse
from importlib import metadata
from typing import Sequence

from serving.flags import one_line_errors


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends "(default: VALUE)" to an option's help unless the help already says its default in
    words (a default of None means "absent", which only words can explain: the help says it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.required or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        if action.default is None:
            return text
        if action.default == "":
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


def subcommand(commands, name: str, summary: str, examples: Sequence[str], description: str = "") -> argparse.ArgumentParser:
    """A subcommand whose --help shows every default and ends with examples; its errors are one
    line naming the flag (serving/flags.py)."""
    return one_line_errors(commands.add_parser(
        name, help=summary, description=description or summary[0].upper() + summary[1:] + ".",
        epilog="examples:\n" + "".join(f"  {line}\n" for line in examples), formatter_class=DefaultsFormatter))


def version() -> str:
    """The installed recdistill's version (pyproject.toml), without importing the project."""
    try:
        return metadata.version("recdistill")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed: make install)"
